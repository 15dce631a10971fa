/*
 * A minimal libfuse 3 passthrough: the yardstick of bench/fuse_bench.py.
 *
 * It mirrors BACKING at MOUNTPOINT through libfuse's high-level (path) API with libfuse's
 * DEFAULT options: no entry/attr timeouts, kernel_cache or use_ino are set here, so whatever
 * it costs is what FUSE itself costs (kernel round trips, libfuse's path resolution, the
 * default 1 s entry/attr caching) with C doing the work. resultsfs is compared against it.
 * Extended attributes: none (getxattr says ENODATA, listxattr returns an empty list), so
 * the kernel keeps asking, as it asks resultsfs.
 *
 * Build (done by the benchmark, into a temporary directory):
 *     gcc -O2 -Wall passthrough.c $(pkg-config --cflags --libs fuse3) -o passthrough
 * Run:
 *     passthrough BACKING MOUNTPOINT [-f] [-o debug] [other libfuse options]
 */

#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* The backing directory; every call works relative to it (the daemon may chdir). */
static int base = -1;

/* "/a/b" -> "a/b"; "/" -> "." */
static const char *rel(const char *path) { return path[1] ? path + 1 : "."; }

/* 0, or -errno of a libc call that returned -1. */
#define RET(call) return (call) == -1 ? -errno : 0

static int pt_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    if (fi)
        RET(fstat((int)fi->fh, st));
    RET(fstatat(base, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int pt_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
    (void)offset;
    (void)fi;
    (void)flags;
    int fd = openat(base, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd == -1)
        return -errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12};
        if (fill(buf, de->d_name, &st, 0, 0))
            break;
    }
    closedir(dir);
    return 0;
}

static int pt_open(const char *path, struct fuse_file_info *fi) {
    int fd = openat(base, rel(path), fi->flags);
    if (fd == -1)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int pt_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
    int fd = openat(base, rel(path), fi->flags, mode);
    if (fd == -1)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int pt_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    ssize_t n = pread((int)fi->fh, buf, size, offset);
    return n == -1 ? -errno : (int)n;
}

static int pt_write(const char *path, const char *buf, size_t size, off_t offset,
                    struct fuse_file_info *fi) {
    (void)path;
    ssize_t n = pwrite((int)fi->fh, buf, size, offset);
    return n == -1 ? -errno : (int)n;
}

static int pt_release(const char *path, struct fuse_file_info *fi) {
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int pt_unlink(const char *path) { RET(unlinkat(base, rel(path), 0)); }

static int pt_rmdir(const char *path) { RET(unlinkat(base, rel(path), AT_REMOVEDIR)); }

static int pt_mkdir(const char *path, mode_t mode) { RET(mkdirat(base, rel(path), mode)); }

static int pt_rename(const char *from, const char *to, unsigned int flags) {
    RET(renameat2(base, rel(from), base, rel(to), flags));
}

static int pt_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    if (fi)
        RET(ftruncate((int)fi->fh, size));
    int fd = openat(base, rel(path), O_WRONLY);
    if (fd == -1)
        return -errno;
    int res = ftruncate(fd, size) == -1 ? -errno : 0;
    close(fd);
    return res;
}

static int pt_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
    if (fi)
        RET(futimens((int)fi->fh, tv));
    RET(utimensat(base, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int pt_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
    if (fi)
        RET(fchmod((int)fi->fh, mode));
    RET(fchmodat(base, rel(path), mode, 0));
}

static int pt_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
    if (fi)
        RET(fchown((int)fi->fh, uid, gid));
    RET(fchownat(base, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int pt_statfs(const char *path, struct statvfs *st) {
    (void)path;
    RET(fstatvfs(base, st));
}

static int pt_getxattr(const char *path, const char *name, char *value, size_t size) {
    (void)path;
    (void)name;
    (void)value;
    (void)size;
    return -ENODATA;
}

static int pt_listxattr(const char *path, char *list, size_t size) {
    (void)path;
    (void)list;
    (void)size;
    return 0;
}

static const struct fuse_operations ops = {
    .getattr = pt_getattr,
    .readdir = pt_readdir,
    .open = pt_open,
    .create = pt_create,
    .read = pt_read,
    .write = pt_write,
    .release = pt_release,
    .unlink = pt_unlink,
    .rmdir = pt_rmdir,
    .mkdir = pt_mkdir,
    .rename = pt_rename,
    .truncate = pt_truncate,
    .utimens = pt_utimens,
    .chmod = pt_chmod,
    .chown = pt_chown,
    .statfs = pt_statfs,
    .getxattr = pt_getxattr,
    .listxattr = pt_listxattr,
};

int main(int argc, char *argv[]) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BACKING MOUNTPOINT [libfuse options]\n", argv[0]);
        return 2;
    }
    base = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (base == -1) {
        perror(argv[1]);
        return 1;
    }
    /* The kernel has applied the caller's umask to the modes it sends. */
    umask(0);
    argv[1] = argv[0];
    return fuse_main(argc - 1, argv + 1, &ops, NULL);
}
