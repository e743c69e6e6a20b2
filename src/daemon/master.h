/* master.h — `sealmail serve`: the supervising master process. */
#ifndef SM_MASTER_H
#define SM_MASTER_H

#include "core/config.h"

/* Prepare the data directory, open the listeners, start the roles and
 * supervise them until SIGTERM/SIGINT.  config_path (NULL: embedded
 * default) is handed to the children and reread on SIGHUP; cfg may be
 * replaced by a reloaded configuration.  Returns the exit status. */
int master_main(struct sm_config *cfg, const char *config_path);

#endif
