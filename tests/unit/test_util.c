/* tests/unit/test_util.c — common/util: buffers, atomic writes, whole-file reads, errors. */
#include "common/util.h"
#include "tests/unit/unit.h"

#include <unistd.h>

TEST(buf_printf_grows) {
    util_buf b;
    util_buf_init(&b);
    for (int i = 0; i < 1000; i++) util_buf_printf(&b, "%d,", i);
    EXPECT(b.len > 3000);
    EXPECT(b.data[b.len] == 0);
    EXPECT(strncmp(b.data, "0,1,2,", 6) == 0);
    util_buf_free(&b);
    EXPECT(b.data == NULL);
}

TEST(atomic_write_then_read) {
    char path[] = "/tmp/thinkfast-util-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[256];
    EXPECT(util_write_file_atomic(path, "hello\n", 6, err, sizeof err) == 0);
    size_t n = 0;
    char *s = util_read_file(path, &n, err, sizeof err);
    EXPECT(s && n == 6 && strcmp(s, "hello\n") == 0);
    free(s);
    unlink(path);
    EXPECT(util_read_file(path, &n, err, sizeof err) == NULL);
    EXPECT(strstr(err, path) != NULL);
}

int main(void) {
    RUN(buf_printf_grows);
    RUN(atomic_write_then_read);
    return unit_summary();
}
