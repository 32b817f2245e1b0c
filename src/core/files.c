// Files: mkdir -p, whole-file reads, and atomic writes (temporary name, fsync, rename,
// fsync of the folder),
// so that a crash never leaves a half-written result.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "normsharp/common.h"

int ns_path(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) return ns_fail(NS_EINVAL, "path too long: '%.60s...'", out);
    return 0;
}

int ns_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int ns_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ns_mkdirs(const char *path) {
    char buf[4096];
    if (ns_path(buf, sizeof buf, "%s", path)) return NS_EINVAL;
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return ns_fail(NS_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            if (!ns_is_dir(buf))
                return ns_fail(NS_EIO, "cannot create directory '%s': a file of that name exists", buf);
            buf[i] = c;
        }
    }
    return 0;
}

// The rename is durable only once the folder that holds the name is on disk: without this
// a power loss can take a finished summary.json or sweep.csv back to its old state (or to
// nothing). A folder that cannot be opened for reading, or a file system that cannot sync
// folders (EINVAL), is left as it is.
static int sync_parent(const char *path) {
    char dir[4200];
    const char *slash = strrchr(path, '/');
    if (ns_path(dir, sizeof dir, "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1, slash ? path : ".")) return NS_EINVAL;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return 0;
    int rc = fsync(fd) != 0 && errno != EINVAL && errno != EROFS ? errno : 0;
    close(fd);
    return rc ? ns_fail(NS_EIO, "cannot write '%s': syncing its folder failed: %s", path, strerror(rc)) : 0;
}

int ns_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    if (ns_path(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid())) return NS_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return ns_fail(NS_EIO, "cannot write '%s': %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return ns_fail(NS_EIO, "cannot write '%s': %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ns_fail(NS_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ns_fail(NS_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    return sync_parent(path);
}

int ns_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ns_fail(NS_EIO, "cannot open '%s': %s", path, strerror(errno));
    ns_buf b = {0};
    char tmp[65536];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) ns_buf_append(&b, tmp, r);
    int err = ferror(f);
    fclose(f);
    if (err) {
        ns_buf_free(&b);
        return ns_fail(NS_EIO, "cannot read '%s'", path);
    }
    if (b.oom) {
        ns_buf_free(&b);
        return NS_ENOMEM;
    }
    if (!b.data) ns_buf_append(&b, "", 0);
    if (!b.data) return NS_ENOMEM;
    *data = b.data;
    if (len) *len = b.len;
    return 0;
}
