/* tools/jobctl_report_main.c — bin/jobctl_report: the report commands of tools/jobctl_report.h
 * (compare, rescore, export --format csv) as a standalone program, so that they can be used and
 * tested before bin/jobctl's command table lists them. Same arguments as `jobctl COMMAND ...`:
 *   jobctl_report compare JOB1 JOB2 --db DIR [--json] [--plot F.svg|F.png] [--k LIST] [--budget-axis]
 *   jobctl_report rescore JOB --db DIR [--grader math|gsm8k] [--json] [--dry-run]
 *   jobctl_report export JOB --db DIR --format csv [--no-text]
 * Once jobctl dispatches these itself this program can go.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "tools/jobctl_report.h"

int main(int argc, char **argv) {
    log_set_name("jobctl");
    jobctl_opts o = {JOBCTL_DEFAULT_BROKER, JOBCTL_DEFAULT_TIMEOUT_MS};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: jobctl_report COMMAND [ARGS]   (the same as `jobctl COMMAND`; each has --help)\n"
                "  compare JOB [JOB ...] --db DIR [--json] [--plot FILE.svg|.png] [--k LIST] [--budget-axis]\n"
                "  rescore JOB --db DIR [--grader math|gsm8k] [--json] [--dry-run]\n"
                "  export JOB --db DIR --format csv [--no-text]\n");
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "compare")) return jobctl_cmd_compare(&o, argc - 1, argv + 1);
    if (!strcmp(cmd, "rescore")) return jobctl_cmd_rescore(&o, argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return jobctl_export_csv(&o, argc - 1, argv + 1);
    fprintf(stderr, "jobctl_report: unknown command \"%s\" (compare, rescore, export)\n", cmd);
    return 2;
}
