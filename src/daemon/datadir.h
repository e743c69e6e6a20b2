/* datadir.h — creating and checking the data directory (DESIGN.md §3).
 *
 *   data_dir/directory.db   the directory (owned by the service user)
 *   data_dir/keys/          spool key pair, TLS certificate (root only)
 *   data_dir/spool/         accepted messages (owned by the service user)
 *   data_dir/mailboxes/     one directory per mailbox (owned by the service user)
 *
 * Used by `sealmail init` and by `sealmail serve`, which initialises an
 * empty data directory itself so that `make run` works out of the box. */
#ifndef SM_DATADIR_H
#define SM_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

/* Create whatever is missing: directories, spool keys, a self-signed
 * certificate for cfg->hostname (only when cfg->tls_cert is missing), the
 * directory database.  Never overwrites.  When running as root, hands
 * directory.db and spool/ to the service user.  Prints one line per thing
 * created to stdout when verbose.  Returns 0 or -1 with err. */
int datadir_init(const struct sm_config *cfg, bool verbose, char *err, size_t errlen);

#endif
