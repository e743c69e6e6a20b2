/* assets.h — the web page's files (src/http/www), embedded in the binary
 * at build time by tools/embed-assets.py. */
#ifndef SM_HTTP_ASSETS_H
#define SM_HTTP_ASSETS_H

#include <stddef.h>

struct asset {
    const char *path;         /* URL path, e.g. "/" or "/app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* The asset served at path, or NULL. */
const struct asset *assets_find(const char *path);

#endif
