/* fileio.h — whole reads and writes on file descriptors, retrying on
 * EINTR and short transfers, so callers never loop themselves. */
#ifndef SM_FILEIO_H
#define SM_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

struct iovec;

/* Write all len bytes; 0, or -1 with errno set. */
int sm_write_full(int fd, const void *data, size_t len);
/* Read up to len bytes; the count (short only at end of file), or -1
 * with errno set. */
ssize_t sm_read_full(int fd, void *data, size_t len);
/* The same at offset off, with pread() (the file offset is untouched). */
ssize_t sm_pread_full(int fd, void *data, size_t len, off_t off);

/* pwritev() all of iov (cnt entries) at off, retrying short writes; the
 * entries are changed on the way.  0, or -1 with errno set. */
int sm_pwritev_full(int fd, struct iovec *iov, int cnt, off_t off);

#endif
