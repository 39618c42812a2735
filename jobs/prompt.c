/* jobs/prompt.c — prompt templates (see jobs/prompt.h for the exact text of each). */
#include "jobs/prompt.h"

#include <string.h>

int prompt_template_known(const char *name) {
    return name && (!strcmp(name, "plain") || !strcmp(name, "llama3-chat"));
}

int prompt_render(const char *template_name, const char *system, const job_problem *p,
                  util_buf *out, char *err, size_t errlen) {
    const char *q = p && p->question ? p->question : "";
    int has_system = system && *system;
    if (!template_name) template_name = "(null)";
    if (!strcmp(template_name, "plain")) {
        if (has_system) util_buf_printf(out, "%s\n\n", system);
        util_buf_printf(out, "Question: %s\nAnswer: Let's think step by step.\n", q);
        return 0;
    }
    if (!strcmp(template_name, "llama3-chat")) {
        util_buf_printf(out, "<|begin_of_text|>");
        if (has_system)
            util_buf_printf(out, "<|start_header_id|>system<|end_header_id|>\n\n%s<|eot_id|>",
                            system);
        util_buf_printf(out,
                        "<|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n",
                        q);
        return 0;
    }
    return util_err(err, errlen, "unknown template \"%s\" (expected plain|llama3-chat)",
                    template_name);
}
