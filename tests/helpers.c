/* Small programs the mount tests run: plain POSIX calls, exit codes and errno shown. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <stdlib.h>
#include <unistd.h>

/* write PATH TEXT [excl]: open(O_WRONLY|O_CREAT|O_TRUNC[|O_EXCL]), write, close. */
static int do_write(const char *path, const char *text, int excl) {
    int flags = O_WRONLY | O_CREAT | O_TRUNC | (excl ? O_EXCL : 0);
    int fd = open(path, flags, 0644);
    if (fd < 0) { printf("open %s\n", strerror(errno)); return 1; }
    if (write(fd, text, strlen(text)) < 0) { printf("write %s\n", strerror(errno)); close(fd); return 2; }
    if (close(fd) < 0) { printf("close %s\n", strerror(errno)); return 3; }
    printf("ok\n");
    return 0;
}

/* dtypes DIR: print each entry's d_type as the kernel gave it (no stat). */
static int do_dtypes(const char *path) {
    DIR *dir = opendir(path);
    if (!dir) { printf("opendir %s\n", strerror(errno)); return 1; }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        const char *kind = entry->d_type == DT_DIR ? "dir" : entry->d_type == DT_REG ? "file"
                         : entry->d_type == DT_UNKNOWN ? "unknown" : "other";
        printf("%s %s\n", kind, entry->d_name);
    }
    closedir(dir);
    return 0;
}

/* xattr-small PATH NAME SIZE: getxattr with a buffer of SIZE bytes (0 = size probe). */
static int do_xattr_small(const char *path, const char *name, const char *size_text) {
    char buffer[4096];
    size_t size = (size_t)atoi(size_text);
    ssize_t got = getxattr(path, name, size ? buffer : NULL, size);
    if (got < 0) { printf("error %s\n", strerror(errno)); return 1; }
    printf("size %zd\n", got);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "write") == 0) return do_write(argv[2], argv[3], argc > 4);
    if (argc == 3 && strcmp(argv[1], "dtypes") == 0) return do_dtypes(argv[2]);
    if (argc == 5 && strcmp(argv[1], "xattr-small") == 0) return do_xattr_small(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: helpers write PATH TEXT [excl] | dtypes DIR | xattr-small PATH NAME SIZE\n");
    return 64;
}
