/* jobs/prompt.h — prompt templates: how a problem becomes the text a model continues.
 *
 *   plain        "Question: {question}\nAnswer: Let's think step by step.\n"
 *                (with a system prompt: "{system}\n\n" first)
 *   llama3-chat  "<|begin_of_text|>"
 *                ["<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"  if system]
 *                "<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
 *                "<|start_header_id|>assistant<|end_header_id|>\n\n"
 *                The special tokens are emitted as text; the tokenizer maps them to their ids.
 */
#ifndef THINKFAST_JOB_PROMPT_H
#define THINKFAST_JOB_PROMPT_H

#include <stddef.h>

#include "common/util.h"
#include "jobs/dataset.h"

/* 1 if name is a known template, else 0. */
int prompt_template_known(const char *name);

/* Appends the rendered prompt for p to out. system may be NULL or "" (none). 0 ok, -1 with err
 * set ("unknown template \"x\" (expected plain|llama3-chat)"). */
int prompt_render(const char *template_name, const char *system, const job_problem *p,
                  util_buf *out, char *err, size_t errlen);

#endif
