/* fileio.c — whole reads and writes (see fileio.h). */
#include "core/fileio.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

int sm_write_full(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* read() (off < 0) or pread() at off until len bytes or the end. */
static ssize_t read_loop(int fd, uint8_t *p, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = off < 0 ? read(fd, p + got, len - got)
                            : pread(fd, p + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t sm_read_full(int fd, void *data, size_t len)
{
    return read_loop(fd, data, len, -1);
}

ssize_t sm_pread_full(int fd, void *data, size_t len, off_t off)
{
    if (off < 0) {
        errno = EINVAL;
        return -1;
    }
    return read_loop(fd, data, len, off);
}

int sm_pwritev_full(int fd, struct iovec *iov, int cnt, off_t off)
{
    while (cnt > 0) {
        ssize_t n = pwritev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        off += n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}
