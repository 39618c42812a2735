/* tests/unit/test_prompt.c — prompt templates render exactly the documented text. */
#include "jobs/prompt.h"
#include "tests/unit/unit.h"

static char err[256];

static const job_problem P = {"0", "What is 2 + 3?", "2 + 3 = 5\n#### 5", "5", "", 0};

static char *render(const char *tpl, const char *sys) {
    static util_buf b;
    util_buf_free(&b);
    util_buf_init(&b);
    if (prompt_render(tpl, sys, &P, &b, err, sizeof err) != 0) return NULL;
    return b.data ? b.data : "";
}

TEST(plain) {
    EXPECT_EQ_STR(render("plain", NULL), "Question: What is 2 + 3?\nAnswer: Let's think step by step.\n");
    EXPECT_EQ_STR(render("plain", ""), "Question: What is 2 + 3?\nAnswer: Let's think step by step.\n");
    EXPECT_EQ_STR(render("plain", "Solve it."),
                  "Solve it.\n\nQuestion: What is 2 + 3?\nAnswer: Let's think step by step.\n");
}

TEST(llama3_chat) {
    EXPECT_EQ_STR(render("llama3-chat", NULL),
                  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ_STR(render("llama3-chat", "You are a careful solver."),
                  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a careful "
                  "solver.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(appends_and_unknown) {
    util_buf b;
    util_buf_init(&b);
    util_buf_printf(&b, "X");
    EXPECT(prompt_render("plain", NULL, &P, &b, err, sizeof err) == 0);
    EXPECT(strncmp(b.data, "XQuestion: ", 11) == 0);
    size_t len = b.len;
    EXPECT(prompt_render("chatml", NULL, &P, &b, err, sizeof err) == -1);
    EXPECT_EQ_STR(err, "unknown template \"chatml\" (expected plain|llama3-chat)");
    EXPECT_EQ_INT(b.len, len);
    util_buf_free(&b);
    EXPECT(prompt_template_known("plain") && prompt_template_known("llama3-chat"));
    EXPECT(!prompt_template_known("Plain") && !prompt_template_known(NULL));
}

int main(void) {
    RUN(plain);
    RUN(llama3_chat);
    RUN(appends_and_unknown);
    return unit_summary();
}
