/*
 * write_result: store one result from C, as bare data, in a bound directory of a resultsfs mount.
 *
 *     cc -Wall -o write_result write_result.c
 *     ./write_result /mnt/results/runs/r7.json 0.25 0.91 100
 *
 * The directory (here /mnt/results/runs) must be bound to a model with the fields loss, accuracy
 * and step: `resultsfs bind /mnt/results/runs lab:Metrics`. The program writes
 * {"loss": 0.25, "accuracy": 0.91, "step": 100} with open, write, fsync and close, checking each.
 * The mount validates the result at fsync (a commit point) and returns its verdict there; close
 * would return it again. If it is refused, the reason is in the file's extended attribute
 * user.results.error, which the program prints. Exit status: 0 stored, 1 refused or failed,
 * 2 wrong arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Print why the mount refused PATH: the newest reasons first, one per line. */
static void print_reason(const char *path)
{
    char reason[8192];
    ssize_t n = getxattr(path, "user.results.error", reason, sizeof reason - 1);
    if (n < 0) {
        fprintf(stderr, "write_result: %s: no reason recorded (getxattr: %s)\n", path, strerror(errno));
        return;
    }
    reason[n] = '\0';
    fprintf(stderr, "write_result: %s: %s\n", path, reason);
}

/* Report a failed call, with the mount's reason, and return the exit status for a failure. */
static int fail(const char *path, const char *call, int err)
{
    fprintf(stderr, "write_result: %s of %s failed: %s\n", call, path, strerror(err));
    print_reason(path);
    return 1;
}

static int parse_number(const char *text, double *value)
{
    char *end;
    errno = 0;
    *value = strtod(text, &end);
    /* JSON has no NaN or infinity: refuse them here rather than write what is not JSON. */
    return errno == 0 && end != text && *end == '\0' && isfinite(*value);
}

static int parse_integer(const char *text, long *value)
{
    char *end;
    errno = 0;
    *value = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

int main(int argc, char **argv)
{
    double loss, accuracy;
    long step;
    if (argc != 5 || !parse_number(argv[2], &loss) || !parse_number(argv[3], &accuracy)
        || !parse_integer(argv[4], &step)) {
        fprintf(stderr, "usage: write_result PATH LOSS ACCURACY STEP (numbers; STEP an integer)\n");
        return 2;
    }
    const char *path = argv[1];

    /* %.17g: enough digits to read back the same double. printf uses the C locale (this program
     * never calls setlocale), so the decimal point is '.', as JSON needs. */
    char json[256];
    int len = snprintf(json, sizeof json, "{\"loss\": %.17g, \"accuracy\": %.17g, \"step\": %ld}\n",
                       loss, accuracy, step);
    if (len < 0 || (size_t)len >= sizeof json) {
        fprintf(stderr, "write_result: the result does not fit in %zu bytes\n", sizeof json);
        return 1;
    }

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fail(path, "open", errno);

    /* write may store fewer bytes than asked, or be interrupted: go on until all are written. */
    for (size_t done = 0; done < (size_t)len;) {
        ssize_t n = write(fd, json + done, (size_t)len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd); /* its error would repeat the one we report */
            return fail(path, "write", err);
        }
        done += (size_t)n;
    }

    /* The commit: the mount validates the whole result and stores it, or refuses it. */
    if (fsync(fd) != 0) {
        int err = errno;
        close(fd);
        return fail(path, "fsync", err);
    }
    /* close is a commit point too: check it, as every program writing to the mount must. */
    if (close(fd) != 0)
        return fail(path, "close", errno);

    printf("%s: stored\n", path);
    return 0;
}
