/* jobs/synth.c — the built-in GSM8K-style problem generator (see jobs/synth.h).
 *
 * A problem is a small story about one person (the hero) and one running quantity. A start op
 * introduces the quantity (items gathered, wages, a trip, practice time, a shopping bill); then
 * transform ops change it (more, fewer, fractions, percentages, sharing, selling, packing,
 * time per item, repeating for weeks, discounts, change from a bill, unit conversions) until
 * the chain has the target number of solution lines. Each op either applies completely —
 * writing its question sentence(s) and one solution line per arithmetic step — or reports
 * that it does not fit the current state (a division that would not be exact, a subtraction
 * that would go to zero or below, a value that would grow past SYNTH_VMAX), in which case
 * another op is tried. The final question asks for the running quantity.
 *
 * Quantity kinds: Q_COUNT (items, or containers, gallons...), Q_MONEY (money held or earned),
 * Q_COST (money paid), Q_MILES, Q_MINUTES, Q_HOURS.
 *
 * Everything is integer arithmetic on int64 with our own PRNG, so output is identical on every
 * machine. Solution lines use "a * b = c", "a / b = c", "a + b = c", "a - b = c" (money results
 * written "$c"), one step per line, and the last line is "#### N".
 */
#include "jobs/synth.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_VMAX 1000000000LL /* no intermediate value grows past this */

/* ---------------- PRNG: splitmix64 seeding, xoshiro256** stream ---------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Problem `index` of a set gets its own stream: seeds never overlap in practice and problem i
 * does not depend on how many problems are generated. */
static void rng_seed(rng *r, uint64_t seed, uint64_t index) {
    uint64_t x = seed;
    uint64_t h = splitmix64(&x) ^ (index * 0xD1B54A32D192ED03ULL);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&h);
}

/* Uniform integer in [lo, hi] (lo <= hi), unbiased by rejection. */
static int64_t rng_range(rng *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1, limit = UINT64_MAX - UINT64_MAX % span, x;
    do x = rng_next(r);
    while (x >= limit);
    return lo + (int64_t)(x % span);
}

#define PICK(r, arr) (&(arr)[rng_range((r), 0, (int64_t)(sizeof(arr) / sizeof((arr)[0])) - 1)])

/* ---------------- vocabulary ---------------- */

typedef struct person {
    const char *name;
    int female;
} person;

static const person PEOPLE[] = {
    {"Natalia", 1}, {"Maria", 1},   {"Aisha", 1},   {"Chloe", 1},   {"Emma", 1},
    {"Fatima", 1},  {"Grace", 1},   {"Hannah", 1},  {"Isabel", 1},  {"Julia", 1},
    {"Keiko", 1},   {"Lena", 1},    {"Mei", 1},     {"Nadia", 1},   {"Olivia", 1},
    {"Priya", 1},   {"Rosa", 1},    {"Sofia", 1},   {"Tara", 1},    {"Valeria", 1},
    {"Wendy", 1},   {"Yara", 1},    {"Zoe", 1},     {"Amara", 1},   {"Beatriz", 1},
    {"Carmen", 1},  {"Elena", 1},   {"Ingrid", 1},  {"Leila", 1},   {"Ruth", 1},
    {"James", 0},   {"Ahmed", 0},   {"Carlos", 0},  {"David", 0},   {"Ethan", 0},
    {"Felix", 0},   {"George", 0},  {"Hiroshi", 0}, {"Ivan", 0},    {"Jamal", 0},
    {"Kofi", 0},    {"Liam", 0},    {"Marco", 0},   {"Noah", 0},    {"Omar", 0},
    {"Pablo", 0},   {"Raj", 0},     {"Samuel", 0},  {"Tomas", 0},   {"Victor", 0},
    {"William", 0}, {"Yusuf", 0},   {"Arjun", 0},   {"Ben", 0},     {"Dmitri", 0},
    {"Elijah", 0},  {"Finn", 0},    {"Hassan", 0},  {"Jonas", 0},   {"Leo", 0},
};

typedef struct item {
    const char *sg, *pl;          /* apple, apples */
    const char *verb, *base;      /* how the hero gets them: "picks" / "pick" */
    const char *cont_sg, *cont_pl;/* container, NULL = none */
    int cap_lo, cap_hi;           /* items per container */
    const char *bad;              /* spoilage adjective, NULL = none */
    int price_lo, price_hi;       /* dollars each when sold, 0 = never sold */
    const char *work, *working;   /* per-item chore: "wash" / "washing", NULL = none */
    int edible;
} item;

static const item ITEMS[] = {
    {"apple", "apples", "picks", "pick", "basket", "baskets", 8, 20, "rotten", 1, 3, "wash", "washing", 1},
    {"orange", "oranges", "picks", "pick", "crate", "crates", 10, 30, "rotten", 1, 3, "peel", "peeling", 1},
    {"strawberry", "strawberries", "picks", "pick", "basket", "baskets", 12, 30, "moldy", 1, 2, "wash", "washing", 1},
    {"tomato", "tomatoes", "picks", "pick", "basket", "baskets", 6, 15, "bruised", 1, 3, "slice", "slicing", 1},
    {"lemon", "lemons", "picks", "pick", "bag", "bags", 6, 12, "rotten", 1, 2, "squeeze", "squeezing", 0},
    {"egg", "eggs", "collects", "collect", "carton", "cartons", 12, 12, "cracked", 1, 2, "clean", "cleaning", 0},
    {"cookie", "cookies", "bakes", "bake", "tray", "trays", 12, 24, "burnt", 1, 3, "decorate", "decorating", 1},
    {"cupcake", "cupcakes", "bakes", "bake", "box", "boxes", 4, 12, "squashed", 2, 5, "frost", "frosting", 1},
    {"muffin", "muffins", "bakes", "bake", "tray", "trays", 6, 12, "burnt", 2, 4, "wrap", "wrapping", 1},
    {"sandwich", "sandwiches", "makes", "make", "tray", "trays", 6, 12, NULL, 3, 8, "wrap", "wrapping", 1},
    {"candle", "candles", "makes", "make", "box", "boxes", 4, 10, "cracked", 3, 12, "wrap", "wrapping", 0},
    {"bracelet", "bracelets", "makes", "make", "bag", "bags", 5, 10, NULL, 2, 8, "pack", "packing", 0},
    {"scarf", "scarves", "knits", "knit", "box", "boxes", 2, 6, NULL, 10, 25, "fold", "folding", 0},
    {"marble", "marbles", "collects", "collect", "bag", "bags", 10, 50, "chipped", 0, 0, NULL, NULL, 0},
    {"seashell", "seashells", "collects", "collect", "bucket", "buckets", 10, 40, "cracked", 0, 0, "clean", "cleaning", 0},
    {"sticker", "stickers", "buys", "buy", "sheet", "sheets", 8, 30, NULL, 0, 0, NULL, NULL, 0},
    {"pencil", "pencils", "buys", "buy", "pack", "packs", 5, 12, NULL, 1, 2, "sharpen", "sharpening", 0},
    {"notebook", "notebooks", "buys", "buy", "pack", "packs", 3, 6, NULL, 2, 5, "label", "labeling", 0},
    {"trading card", "trading cards", "buys", "buy", "pack", "packs", 8, 15, "bent", 0, 0, "sort", "sorting", 0},
    {"flower", "flowers", "picks", "pick", "bunch", "bunches", 6, 12, "wilted", 2, 4, "trim", "trimming", 0},
    {"toy car", "toy cars", "buys", "buy", "box", "boxes", 4, 8, "broken", 2, 6, "paint", "painting", 0},
    {"birdhouse", "birdhouses", "builds", "build", NULL, NULL, 0, 0, NULL, 15, 40, "paint", "painting", 0},
};

static const char *const THINGS[] = {"a new bike",      "a pair of shoes", "a video game",
                                     "a board game",    "a concert ticket", "groceries",
                                     "art supplies",    "a backpack",       "a gift for a friend",
                                     "books",           "a jacket",         "a plant"};
static const char *const JOBS[] = {"babysitting",   "walking dogs",  "tutoring math",
                                   "washing cars",  "mowing lawns",  "working at the library",
                                   "working at a bakery", "delivering newspapers"};
static const char *const FEES[] = {"delivery", "gift wrapping", "a membership card", "parking"};
static const char *const RELS[] = {"friend", "neighbor", "cousin", "classmate"};

typedef struct activity {
    const char *does, *doing;
} activity;
static const activity ACTIVITIES[] = {
    {"practices the piano", "practicing the piano"}, {"reads", "reading"},
    {"jogs", "jogging"},         {"studies Spanish", "studying Spanish"},
    {"draws", "drawing"},        {"plays chess", "playing chess"},
    {"swims", "swimming"},       {"works in the garden", "working in the garden"},
};

typedef struct travel {
    const char *goes, *go;       /* "drives" / "drive" */
    int s_lo, s_hi;              /* miles per hour */
    int car;
} travel;
static const travel TRAVELS[] = {
    {"drives", "drive", 30, 65, 1},
    {"rides her bike", "ride her bike", 8, 18, 0}, /* "her" is fixed up for heroes */
    {"walks", "walk", 2, 4, 0},
    {"runs", "run", 5, 8, 0},
};

typedef struct frac {
    int p, q;
    const char *words;
} frac;
static const frac FRACS[] = {{1, 2, "half"},         {1, 3, "a third"},     {1, 4, "a quarter"},
                             {1, 5, "a fifth"},      {2, 3, "two thirds"},  {3, 4, "three quarters"},
                             {2, 5, "two fifths"},   {3, 5, "three fifths"}, {1, 6, "a sixth"},
                             {1, 10, "a tenth"}};
static const int PCTS[] = {10, 20, 25, 30, 40, 50, 60, 75, 80};

/* ---------------- generator state ---------------- */

enum { Q_COUNT, Q_MONEY, Q_COST, Q_MILES, Q_MINUTES, Q_HOURS };

typedef struct gen {
    rng r;
    util_buf *q, *sol;
    int steps;                 /* solution lines written */
    int64_t lo, hi;            /* base quantity range */
    const person *hero, *other;
    int other_introduced;
    int64_t v;                 /* the running quantity */
    int kind;
    const item *it;            /* what is counted (Q_COUNT), NULL for containers/gallons */
    const char *unit_sg, *unit_pl; /* Q_COUNT unit words */
    int sellable, price_lo, price_hi;
    int gas;                   /* the count is gallons of gas */
    int car;                   /* miles by car */
    int periodic;              /* the quantity describes one occasion: "every week" may follow */
    int repeated, returned, hours_paid, discounted;
    const char *doing;         /* activity for minutes */
    unsigned things_used;      /* bit i: THINGS[i] already named */
    unsigned less_used;        /* phrasings of c_less already used */
    unsigned more_used;        /* phrasings of m_more already used */
    int packed;                /* the items were already counted in containers */
    int64_t other_amount;      /* start_compare: the other person's amount */
    const char *category;      /* the kind of story (set by the start op) */
    int uses[64];              /* times each op of OPS was applied */
    char ask[256];
} gen;

static const char *he(const gen *g) { return g->hero->female ? "she" : "he"; }
static const char *He(const gen *g) { return g->hero->female ? "She" : "He"; }
static const char *his(const gen *g) { return g->hero->female ? "her" : "his"; }
static const char *him(const gen *g) { return g->hero->female ? "her" : "him"; }

/* Sentence subject: the name, or the pronoun half of the time. */
static const char *subj(gen *g) { return rng_range(&g->r, 0, 1) ? g->hero->name : He(g); }

/* "1 apples" -> "1 apple": after a standalone number 1, a known plural becomes singular. */
static void fix_plural_one(char *buf) {
    static const char *const extra[][2] = {{"minutes", "minute"}, {"hours", "hour"},
                                           {"miles", "mile"},     {"gallons", "gallon"},
                                           {"days", "day"},       {"weeks", "week"}};
    for (char *p = buf; (p = strstr(p, "1 ")) != NULL; p++) {
        if (p > buf && (isdigit((unsigned char)p[-1]) || p[-1] == '.')) continue;
        char *w = p + 2;
        const char *pl = NULL, *sg = NULL;
        for (size_t i = 0; i < sizeof ITEMS / sizeof ITEMS[0] && !pl; i++) {
            const char *c[2][2] = {{ITEMS[i].pl, ITEMS[i].sg}, {ITEMS[i].cont_pl, ITEMS[i].cont_sg}};
            for (int k = 0; k < 2 && !pl; k++)
                if (c[k][0] && !strncmp(w, c[k][0], strlen(c[k][0])) &&
                    !isalpha((unsigned char)w[strlen(c[k][0])])) {
                    pl = c[k][0];
                    sg = c[k][1];
                }
        }
        for (size_t i = 0; i < sizeof extra / sizeof extra[0] && !pl; i++)
            if (!strncmp(w, extra[i][0], strlen(extra[i][0])) &&
                !isalpha((unsigned char)w[strlen(extra[i][0])])) {
                pl = extra[i][0];
                sg = extra[i][1];
            }
        if (pl) memmove(w + strlen(sg), w + strlen(pl), strlen(w + strlen(pl)) + 1),
                memcpy(w, sg, strlen(sg));
    }
}

static void say(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(gen *g, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    buf[0] = (char)toupper((unsigned char)buf[0]); /* sentences start with a capital */
    fix_plural_one(buf);
    if (g->q->len) util_buf_append(g->q, " ", 1);
    util_buf_append(g->q, buf, strlen(buf));
}

static void step(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(gen *g, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fix_plural_one(buf);
    util_buf_append(g->sol, buf, strlen(buf));
    util_buf_append(g->sol, "\n", 1);
    g->steps++;
}

static void ask(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ask(gen *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->ask, sizeof g->ask, fmt, ap);
    va_end(ap);
}

/* "her friend Omar" the first time, "Omar" afterwards. */
static const char *other_ref(gen *g, char *buf, size_t cap) {
    if (g->other_introduced) return g->other->name;
    const char *rel = *PICK(&g->r, RELS);
    if (rng_range(&g->r, 0, 2) == 0) rel = g->other->female ? "sister" : "brother";
    snprintf(buf, cap, "%s %s %s", his(g), rel, g->other->name);
    g->other_introduced = 1;
    return buf;
}

/* A purchase not yet named in this problem (the list is longer than any chain). */
static const char *pick_thing(gen *g) {
    int64_t i;
    do i = rng_range(&g->r, 0, (int64_t)(sizeof THINGS / sizeof THINGS[0]) - 1);
    while (g->things_used & (1u << i));
    g->things_used |= 1u << i;
    return THINGS[i];
}

/* Unit word for a count of n. */
static const char *units(const gen *g, int64_t n) { return n == 1 ? g->unit_sg : g->unit_pl; }

static int64_t base_num(gen *g) { return rng_range(&g->r, g->lo, g->hi); }
static int64_t small_num(gen *g) { return rng_range(&g->r, 2, 12); }
static int fits(int64_t x) { return x >= 0 && x <= SYNTH_VMAX; }

static const char *units_of(const item *it, int64_t n) { return n == 1 ? it->sg : it->pl; }

static void set_count(gen *g, int64_t v, const item *it) {
    g->kind = Q_COUNT;
    g->v = v;
    g->it = it;
    g->unit_sg = it->sg;
    g->unit_pl = it->pl;
    g->sellable = it->price_lo > 0;
    g->price_lo = it->price_lo;
    g->price_hi = it->price_hi;
    g->gas = 0;
}

/* A divisor of v in [lo, hi] chosen uniformly, or 0 if none. */
static int64_t pick_divisor(gen *g, int64_t v, int64_t lo, int64_t hi) {
    int64_t c[64];
    int n = 0;
    for (int64_t d = lo; d <= hi && n < 64; d++)
        if (v % d == 0) c[n++] = d;
    return n ? c[rng_range(&g->r, 0, n - 1)] : 0;
}

/* A subtraction amount d with 1 <= d < v, from the base range when it fits. */
static int64_t pick_less(gen *g, int64_t v) {
    int64_t top = v - 1 < g->hi ? v - 1 : g->hi;
    int64_t bot = g->lo < top ? g->lo : 1;
    return rng_range(&g->r, bot, top);
}

/* ---------------- start ops (return the steps they wrote, or -1) ---------------- */

static int start_have(gen *g) {
    g->category = "counting";
    const item *it = PICK(&g->r, ITEMS);
    int64_t a = base_num(g);
    say(g, "%s has %lld %s.", g->hero->name, (long long)a, it->pl);
    set_count(g, a, it);
    ask(g, "How many %s does %s have?", it->pl, g->hero->name);
    return 0;
}

static int start_containers(gen *g) {
    g->category = "groups";
    const item *it;
    do it = PICK(&g->r, ITEMS);
    while (!it->cont_sg);
    int64_t b = small_num(g), c = rng_range(&g->r, it->cap_lo, it->cap_hi), v = b * c;
    if (!strcmp(it->verb, "buys"))
        say(g, "%s buys %lld %s of %s. Each %s has %lld %s.", g->hero->name, (long long)b,
            it->cont_pl, it->pl, it->cont_sg, (long long)c, it->pl);
    else
        say(g, "%s %s enough %s to fill %lld %s, with %lld %s in each %s.", g->hero->name,
            it->verb, it->pl, (long long)b, it->cont_pl, (long long)c, it->pl, it->cont_sg);
    step(g, "%s %s %lld * %lld = %lld %s.", g->hero->name, it->verb, (long long)b, (long long)c,
         (long long)v, it->pl);
    set_count(g, v, it);
    g->periodic = 1;
    g->packed = 1;
    ask(g, "How many %s does %s %s?", it->pl, g->hero->name, it->base);
    return 1;
}

static int start_daily(gen *g) {
    g->category = "rates";
    const item *it = PICK(&g->r, ITEMS);
    int64_t a = base_num(g), d = rng_range(&g->r, 2, 7), v = a * d;
    if (!fits(v)) return -1;
    say(g, "%s %s %lld %s every day for %lld days.", g->hero->name, it->verb, (long long)a, it->pl,
        (long long)d);
    step(g, "%s %s %lld * %lld = %lld %s in total.", g->hero->name, it->verb, (long long)a,
         (long long)d, (long long)v, it->pl);
    set_count(g, v, it);
    g->periodic = 1;
    ask(g, "How many %s does %s %s in total?", it->pl, g->hero->name, it->base);
    return 1;
}

static int start_two_days(gen *g) {
    g->category = "comparison";
    const item *it = PICK(&g->r, ITEMS);
    int64_t a = base_num(g), t;
    say(g, "On Monday, %s %s %lld %s.", g->hero->name, it->verb, (long long)a, it->pl);
    if (rng_range(&g->r, 0, 1) || a < 3) {
        int64_t m = rng_range(&g->r, 2, 5);
        t = a * m;
        if (m == 2)
            say(g, "On Tuesday, %s %s twice as many %s as on Monday.", he(g), it->verb, it->pl);
        else
            say(g, "On Tuesday, %s %s %lld times as many %s as on Monday.", he(g), it->verb,
                (long long)m, it->pl);
        step(g, "On Tuesday, %s %s %lld * %lld = %lld %s.", g->hero->name, it->verb, (long long)a,
             (long long)m, (long long)t, it->pl);
    } else {
        int64_t d = pick_less(g, a);
        t = a - d;
        say(g, "On Tuesday, %s %s %lld fewer %s than on Monday.", he(g), it->verb, (long long)d,
            it->pl);
        step(g, "On Tuesday, %s %s %lld - %lld = %lld %s.", g->hero->name, it->verb, (long long)a,
             (long long)d, (long long)t, it->pl);
    }
    step(g, "Altogether, %s %s %lld + %lld = %lld %s.", g->hero->name, it->verb, (long long)a,
         (long long)t, (long long)(a + t), it->pl);
    set_count(g, a + t, it);
    g->periodic = 1;
    ask(g, "How many %s does %s %s on the two days?", it->pl, g->hero->name, it->base);
    return 2;
}

/* Two people: the hero's amount is stated relative to the other's. */
static int start_compare(gen *g) {
    g->category = "comparison";
    const item *it = PICK(&g->r, ITEMS);
    int64_t a = base_num(g), v;
    int mode = (int)rng_range(&g->r, 0, 2);
    say(g, "%s has %lld %s.", g->other->name, (long long)a, it->pl);
    g->other_introduced = 1;
    g->other_amount = a;
    if (mode == 0) {
        int64_t m = rng_range(&g->r, 2, 6);
        v = a * m;
        if (m == 2) say(g, "%s has twice as many %s as %s.", g->hero->name, it->pl, g->other->name);
        else say(g, "%s has %lld times as many %s as %s.", g->hero->name, (long long)m, it->pl,
                 g->other->name);
        step(g, "%s has %lld * %lld = %lld %s.", g->hero->name, (long long)a, (long long)m,
             (long long)v, it->pl);
    } else if (mode == 1) {
        int64_t d = base_num(g);
        v = a + d;
        say(g, "%s has %lld more %s than %s.", g->hero->name, (long long)d, it->pl, g->other->name);
        step(g, "%s has %lld + %lld = %lld %s.", g->hero->name, (long long)a, (long long)d,
             (long long)v, it->pl);
    } else {
        int64_t q = pick_divisor(g, a, 2, 5);
        if (!q || a / q < 1) return -1;
        v = a / q;
        say(g, "%s has %s as many %s as %s.", g->hero->name,
            q == 2 ? "half" : q == 3 ? "a third" : q == 4 ? "a quarter" : "a fifth", it->pl,
            g->other->name);
        step(g, "%s has %lld / %lld = %lld %s.", g->hero->name, (long long)a, (long long)q,
             (long long)v, units_of(it, v));
    }
    set_count(g, v, it);
    ask(g, "How many %s does %s have?", it->pl, g->hero->name);
    return 1;
}

/* The same with "together": a second step adds both amounts. */
static int start_compare_total(gen *g) {
    if (start_compare(g) < 0) return -1;
    int64_t a0 = g->other_amount;
    step(g, "Together they have %lld + %lld = %lld %s.", (long long)a0, (long long)g->v,
         (long long)(a0 + g->v), g->unit_pl);
    g->v += a0;
    ask(g, "How many %s do %s and %s have together?", g->unit_pl, g->hero->name, g->other->name);
    return 2;
}

static int start_wage(gen *g) {
    g->category = "wages";
    int64_t w = rng_range(&g->r, 8, 30), h = small_num(g), v = w * h;
    const char *job = *PICK(&g->r, JOBS);
    say(g, "%s earns $%lld an hour %s. This week %s works %lld hours.", g->hero->name,
        (long long)w, job, he(g), (long long)h);
    step(g, "%s earns %lld * %lld = $%lld.", g->hero->name, (long long)w, (long long)h,
         (long long)v);
    g->kind = Q_MONEY;
    g->v = v;
    g->periodic = 1;
    ask(g, "How much money does %s earn this week?", g->hero->name);
    return 1;
}

static int start_savings(gen *g) {
    g->category = "money";
    int64_t a = base_num(g) * rng_range(&g->r, 1, 5);
    say(g, "%s has $%lld in %s savings.", g->hero->name, (long long)a, his(g));
    g->kind = Q_MONEY;
    g->v = a;
    ask(g, "How much money does %s have?", g->hero->name);
    return 0;
}

static int start_trip(gen *g) {
    g->category = "distance";
    const travel *t = PICK(&g->r, TRAVELS);
    int64_t s = rng_range(&g->r, t->s_lo, t->s_hi), h = rng_range(&g->r, 2, t->car ? 8 : 5);
    char goes[64];
    snprintf(goes, sizeof goes, "%s", t->goes);
    if (strstr(goes, " her ") && !g->hero->female) snprintf(goes, sizeof goes, "rides his bike");
    say(g, "%s %s at %lld miles per hour for %lld hours.", g->hero->name, goes, (long long)s,
        (long long)h);
    step(g, "%s travels %lld * %lld = %lld miles.", g->hero->name, (long long)s, (long long)h,
         (long long)(s * h));
    g->kind = Q_MILES;
    g->v = s * h;
    g->car = t->car;
    g->periodic = 1;
    ask(g, "How many miles does %s travel?", g->hero->name);
    return 1;
}

static int start_practice(gen *g) {
    g->category = "time";
    const activity *a = PICK(&g->r, ACTIVITIES);
    int64_t m = rng_range(&g->r, 2, 12) * 5, d = rng_range(&g->r, 2, 7);
    say(g, "%s %s for %lld minutes every day for %lld days.", g->hero->name, a->does,
        (long long)m, (long long)d);
    step(g, "%s spends %lld * %lld = %lld minutes %s.", g->hero->name, (long long)m, (long long)d,
         (long long)(m * d), a->doing);
    g->kind = Q_MINUTES;
    g->v = m * d;
    g->doing = a->doing;
    g->periodic = 1;
    ask(g, "How many minutes does %s spend %s?", g->hero->name, a->doing);
    return 1;
}

static int start_shopping(gen *g) {
    g->category = "shopping";
    const item *it;
    do it = PICK(&g->r, ITEMS);
    while (!it->price_lo);
    int64_t a = rng_range(&g->r, 2, g->hi < 30 ? g->hi : 30);
    int64_t p = rng_range(&g->r, it->price_lo + 1, it->price_hi + 3);
    say(g, "%s buys %lld %s for $%lld each.", g->hero->name, (long long)a, it->pl, (long long)p);
    step(g, "The %s cost %lld * %lld = $%lld.", it->pl, (long long)a, (long long)p,
         (long long)(a * p));
    g->kind = Q_COST;
    g->v = a * p;
    g->periodic = 1;
    ask(g, "How much does %s spend?", g->hero->name);
    return 1;
}

/* ---------------- transform ops ---------------- */

/* An op: kind it applies to (-1 any), steps it writes, whether it must be the last op, how
 * often one problem may use it (so stories do not repeat themselves). */
typedef struct op {
    int kind, cost, final_only, max_uses;
    int (*fn)(gen *g);
} op;

static int c_more(gen *g) {
    int64_t d = base_num(g);
    char buf[96];
    if (!g->it || g->unit_pl != g->it->pl || !fits(g->v + d)) return -1; /* items, not boxes */
    if (rng_range(&g->r, 0, 1))
        say(g, "Then %s %s %lld more %s.", he(g), g->it->verb, (long long)d, g->unit_pl);
    else
        say(g, "%s gives %s %lld more %s.", other_ref(g, buf, sizeof buf), him(g), (long long)d,
            g->unit_pl);
    step(g, "%s now has %lld + %lld = %lld %s.", g->hero->name, (long long)g->v, (long long)d,
         (long long)(g->v + d), g->unit_pl);
    g->v += d;
    ask(g, "How many %s does %s have now?", g->unit_pl, g->hero->name);
    g->periodic = 0;
    return 1;
}

/* The hero loses d of the current quantity: the subtraction step and the "left" question. */
static void take_away(gen *g, int64_t d) {
    step(g, "%s has %lld - %lld = %lld %s left.", g->hero->name, (long long)g->v, (long long)d,
         (long long)(g->v - d), units(g, g->v - d));
    g->v -= d;
    ask(g, "How many %s does %s have left?", g->unit_pl, g->hero->name);
    g->periodic = 0;
}

static int c_less(gen *g) {
    if (g->v < 2 || g->gas) return -1;
    int64_t d = pick_less(g, g->v);
    char buf[96];
    int how = (int)rng_range(&g->r, 0, 2);
    if (how == 0 && !(g->it && g->it->edible && g->unit_pl == g->it->pl)) how = 1;
    while (g->less_used & (1u << how)) how = (how + 1) % 3; /* no phrasing twice */
    if (how == 0 && !(g->it && g->it->edible && g->unit_pl == g->it->pl)) how = 1;
    if (g->less_used & (1u << how)) return -1;
    g->less_used |= 1u << how;
    if (how == 0)
        say(g, "%s eats %lld of them.", subj(g), (long long)d);
    else if (how == 1)
        say(g, "%s gives %lld %s to %s.", subj(g), (long long)d, units(g, d),
            other_ref(g, buf, sizeof buf));
    else
        say(g, "%s gives away %lld %s.", subj(g), (long long)d, units(g, d));
    take_away(g, d);
    return 1;
}

/* Picks a fraction p/q with q | v and 0 < p/q * v < v. */
static const frac *pick_frac(gen *g, int64_t v) {
    const frac *c[16];
    int n = 0;
    for (size_t i = 0; i < sizeof FRACS / sizeof FRACS[0]; i++)
        if (v % FRACS[i].q == 0 && v / FRACS[i].q > 0) c[n++] = &FRACS[i];
    return n ? c[rng_range(&g->r, 0, n - 1)] : NULL;
}

/* Line for v * p/q: "v / q" when p == 1 (keeps the arithmetic in integers either way). */
static void frac_expr(const frac *f, int64_t v, char *buf, size_t cap) {
    if (f->p == 1) snprintf(buf, cap, "%lld / %d", (long long)v, f->q);
    else snprintf(buf, cap, "%lld * %d / %d", (long long)v, f->p, f->q);
}

static int c_frac(gen *g) {
    if (g->gas) return -1;
    const frac *f = pick_frac(g, g->v);
    if (!f) return -1;
    char buf[96], ex[64];
    int64_t part = g->v / f->q * f->p;
    const char *o = other_ref(g, buf, sizeof buf);
    say(g, "%s gives %s of the %s to %s.", subj(g), f->words, g->unit_pl, o);
    frac_expr(f, g->v, ex, sizeof ex);
    step(g, "%s gives %s = %lld %s to %s.", g->hero->name, ex, (long long)part, units(g, part),
         g->other->name);
    take_away(g, part);
    return 2;
}

static int c_pct_bad(gen *g) {
    if (!g->it || g->unit_pl != g->it->pl || !g->it->bad) return -1;
    int pct = *PICK(&g->r, PCTS);
    if ((g->v * pct) % 100 != 0 || pct >= 100) return -1;
    int64_t k = g->v * pct / 100;
    if (k == 0) return -1;
    say(g, "%d%% of the %s are %s, so %s throws them away.", pct, g->unit_pl, g->it->bad, he(g));
    step(g, "%lld * %d / 100 = %lld %s %s %s.", (long long)g->v, pct, (long long)k, units(g, k),
         k == 1 ? "is" : "are",
         g->it->bad);
    take_away(g, k);
    return 2;
}

static int c_keep_frac(gen *g) {
    if (g->gas) return -1;
    const frac *f = pick_frac(g, g->v);
    if (!f) return -1;
    char ex[64];
    int64_t part = g->v / f->q * f->p;
    say(g, "%s keeps %s of the %s for %sself and gives the rest away.", subj(g), f->words,
        g->unit_pl, him(g));
    frac_expr(f, g->v, ex, sizeof ex);
    step(g, "%s keeps %s = %lld %s.", g->hero->name, ex, (long long)part, units(g, part));
    g->v = part;
    ask(g, "How many %s does %s keep?", g->unit_pl, g->hero->name);
    g->periodic = 0;
    return 1;
}

static int c_share(gen *g) {
    if (g->gas) return -1;
    int64_t k = pick_divisor(g, g->v, 2, 12);
    if (!k || g->v / k < 1) return -1;
    int items = g->it && g->unit_pl == g->it->pl;
    if (rng_range(&g->r, 0, 1) || !items) {
        say(g, "%s shares the %s equally among %lld friends.", subj(g), g->unit_pl, (long long)k);
        step(g, "Each friend gets %lld / %lld = %lld %s.", (long long)g->v, (long long)k,
             (long long)(g->v / k), units(g, g->v / k));
        ask(g, "How many %s does each friend get?", g->unit_pl);
    } else {
        say(g, "%s puts the %s into %lld jars with the same number in each jar.", subj(g),
            g->unit_pl, (long long)k);
        step(g, "Each jar has %lld / %lld = %lld %s.", (long long)g->v, (long long)k,
             (long long)(g->v / k), units(g, g->v / k));
        ask(g, "How many %s are in each jar?", g->unit_pl);
    }
    g->v /= k;
    return 1;
}

static int c_pack(gen *g) {
    if (!g->it || g->unit_pl != g->it->pl || !g->it->cont_sg || g->packed) return -1;
    int64_t c = pick_divisor(g, g->v, g->it->cap_lo > 2 ? g->it->cap_lo : 2, g->it->cap_hi);
    if (!c || g->v / c < 2) return -1;
    const item *it = g->it;
    say(g, "%s packs the %s into %s of %lld.", subj(g), it->pl, it->cont_pl, (long long)c);
    step(g, "%s fills %lld / %lld = %lld %s.", g->hero->name, (long long)g->v, (long long)c,
         (long long)(g->v / c), it->cont_pl);
    g->v /= c;
    g->unit_sg = it->cont_sg;
    g->unit_pl = it->cont_pl;
    /* a container sells for about its contents' price */
    g->price_lo = it->price_lo ? it->price_lo * (int)c : 0;
    g->price_hi = it->price_hi ? it->price_hi * (int)c : 0;
    g->sellable = it->price_lo > 0;
    ask(g, "How many %s does %s fill?", it->cont_pl, g->hero->name);
    g->periodic = 0;
    return 1;
}

static int c_sell(gen *g) {
    if (!g->sellable || g->gas) return -1;
    int64_t p = rng_range(&g->r, g->price_lo, g->price_hi);
    if (!fits(g->v * p)) return -1;
    if (rng_range(&g->r, 0, 1))
        say(g, "%s sells each %s for $%lld.", subj(g), g->unit_sg, (long long)p);
    else
        say(g, "%s sells all of them for $%lld each.", subj(g), (long long)p);
    step(g, "%s earns %lld * %lld = $%lld.", g->hero->name, (long long)g->v, (long long)p,
         (long long)(g->v * p));
    g->v *= p;
    g->kind = Q_MONEY;
    ask(g, "How much money does %s earn?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int c_gas_cost(gen *g) {
    if (!g->gas) return -1;
    int64_t p = rng_range(&g->r, 3, 5);
    say(g, "Gas costs $%lld per gallon.", (long long)p);
    step(g, "The gas costs %lld * %lld = $%lld.", (long long)g->v, (long long)p,
         (long long)(g->v * p));
    g->v *= p;
    g->kind = Q_COST;
    g->gas = 0;
    ask(g, "How much does %s spend on gas?", g->hero->name);
    return 1;
}

static int c_chore_time(gen *g) {
    if (!g->it || g->unit_pl != g->it->pl || !g->it->work || g->gas) return -1;
    int64_t t = rng_range(&g->r, 2, 6);
    if (!fits(g->v * t)) return -1;
    say(g, "It takes %s %lld minutes to %s each %s.", him(g), (long long)t, g->it->work,
        g->unit_sg);
    step(g, "%s spends %lld * %lld = %lld minutes %s.", g->hero->name, (long long)g->v,
         (long long)t, (long long)(g->v * t), g->it->working);
    g->v *= t;
    g->kind = Q_MINUTES;
    g->doing = g->it->working;
    ask(g, "How many minutes does %s spend %s the %s?", g->hero->name, g->it->working, g->it->pl);
    g->periodic = 0;
    return 1;
}

static int any_repeat(gen *g) {
    if (!g->periodic || g->repeated) return -1;
    int64_t w = rng_range(&g->r, 2, 8);
    if (!fits(g->v * w)) return -1;
    say(g, "%s does the same thing every week for %lld weeks.", subj(g), (long long)w);
    long long v = (long long)g->v, x = (long long)(g->v * w);
    switch (g->kind) {
    case Q_COUNT:
        step(g, "In %lld weeks, %s %s %lld * %lld = %lld %s.", (long long)w, g->hero->name,
             g->it ? g->it->verb : "gets", v, (long long)w, x, units(g, x));
        ask(g, "How many %s does %s %s in %lld weeks?", g->unit_pl, g->hero->name,
            g->it ? g->it->base : "get", (long long)w);
        break;
    case Q_MONEY:
        step(g, "In %lld weeks, %s earns %lld * %lld = $%lld.", (long long)w, g->hero->name, v,
             (long long)w, x);
        ask(g, "How much money does %s earn in %lld weeks?", g->hero->name, (long long)w);
        break;
    case Q_COST:
        step(g, "In %lld weeks, %s spends %lld * %lld = $%lld.", (long long)w, g->hero->name, v,
             (long long)w, x);
        ask(g, "How much does %s spend in %lld weeks?", g->hero->name, (long long)w);
        break;
    case Q_MILES:
        step(g, "In %lld weeks, %s travels %lld * %lld = %lld miles.", (long long)w,
             g->hero->name, v, (long long)w, x);
        ask(g, "How many miles does %s travel in %lld weeks?", g->hero->name, (long long)w);
        break;
    case Q_MINUTES:
        step(g, "In %lld weeks, %s spends %lld * %lld = %lld minutes %s.", (long long)w,
             g->hero->name, v, (long long)w, x, g->doing);
        ask(g, "How many minutes does %s spend %s in %lld weeks?", g->hero->name, g->doing,
            (long long)w);
        break;
    default: return -1;
    }
    g->v *= w;
    g->repeated = 1;
    g->periodic = 0;
    return 1;
}

static int m_spend(gen *g) {
    if (g->v < 2) return -1;
    int64_t s = pick_less(g, g->v);
    say(g, "%s spends $%lld on %s.", subj(g), (long long)s, pick_thing(g));
    step(g, "%s has %lld - %lld = $%lld left.", g->hero->name, (long long)g->v, (long long)s,
         (long long)(g->v - s));
    g->v -= s;
    ask(g, "How much money does %s have left?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int m_more(gen *g) {
    int64_t d = base_num(g);
    char buf[96];
    if (!fits(g->v + d)) return -1;
    int how = (int)rng_range(&g->r, 0, 2);
    while (g->more_used & (1u << how)) how = (how + 1) % 3; /* no phrasing twice */
    g->more_used |= 1u << how;
    if (how == 0)
        say(g, "%s also gets $%lld from %s.", subj(g), (long long)d, other_ref(g, buf, sizeof buf));
    else if (how == 1)
        say(g, "%s also gets $%lld as a birthday present.", subj(g), (long long)d);
    else
        say(g, "%s finds $%lld in an old coat.", subj(g), (long long)d);
    step(g, "%s now has %lld + %lld = $%lld.", g->hero->name, (long long)g->v, (long long)d,
         (long long)(g->v + d));
    g->v += d;
    ask(g, "How much money does %s have now?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int m_spend_frac(gen *g) {
    const frac *f = pick_frac(g, g->v);
    if (!f) return -1;
    char ex[64];
    const char *thing = pick_thing(g);
    int64_t part = g->v / f->q * f->p;
    say(g, "%s spends %s of the money on %s.", subj(g), f->words, thing);
    frac_expr(f, g->v, ex, sizeof ex);
    step(g, "%s spends %s = $%lld on %s.", g->hero->name, ex, (long long)part, thing);
    step(g, "%s has %lld - %lld = $%lld left.", g->hero->name, (long long)g->v, (long long)part,
         (long long)(g->v - part));
    g->v -= part;
    ask(g, "How much money does %s have left?", g->hero->name);
    g->periodic = 0;
    return 2;
}

static int m_save_pct(gen *g) {
    int pct = *PICK(&g->r, PCTS);
    if ((g->v * pct) % 100 != 0 || g->v * pct / 100 == 0) return -1;
    say(g, "%s saves %d%% of the money.", subj(g), pct);
    step(g, "%s saves %lld * %d / 100 = $%lld.", g->hero->name, (long long)g->v, pct,
         (long long)(g->v * pct / 100));
    g->v = g->v * pct / 100;
    ask(g, "How much money does %s save?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int m_buy(gen *g) {
    const item *it;
    do it = PICK(&g->r, ITEMS);
    while (!it->price_lo);
    int64_t c = pick_divisor(g, g->v, it->price_lo + 1 > 2 ? it->price_lo + 1 : 2,
                             it->price_hi * 4);
    if (!c || g->v / c < 2) return -1;
    say(g, "%s uses all of the money to buy %s that cost $%lld each.", subj(g), it->pl,
        (long long)c);
    step(g, "%s buys %lld / %lld = %lld %s.", g->hero->name, (long long)g->v, (long long)c,
         (long long)(g->v / c), it->pl);
    set_count(g, g->v / c, it);
    g->sellable = 0; /* selling what was just bought is a silly story */
    ask(g, "How many %s does %s buy?", it->pl, g->hero->name);
    g->periodic = 0;
    return 1;
}

static int m_envelopes(gen *g) {
    int64_t k = pick_divisor(g, g->v, 2, 10);
    if (!k) return -1;
    say(g, "%s divides the money equally into %lld envelopes.", subj(g), (long long)k);
    step(g, "Each envelope gets %lld / %lld = $%lld.", (long long)g->v, (long long)k,
         (long long)(g->v / k));
    g->v /= k;
    ask(g, "How much money goes into each envelope?");
    return 1;
}

static int cost_fee(gen *g) {
    int64_t d = rng_range(&g->r, 2, 15);
    say(g, "%s also pays $%lld for %s.", subj(g), (long long)d, *PICK(&g->r, FEES));
    step(g, "In total, %s pays %lld + %lld = $%lld.", g->hero->name, (long long)g->v, (long long)d,
         (long long)(g->v + d));
    g->v += d;
    ask(g, "How much does %s pay in total?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int cost_discount(gen *g) {
    if (g->discounted) return -1;
    int pct = *PICK(&g->r, PCTS);
    if (pct > 50 || (g->v * pct) % 100 != 0 || g->v * pct / 100 == 0) return -1;
    int64_t off = g->v * pct / 100;
    say(g, "The store gives %s a %d%% discount.", him(g), pct);
    step(g, "The discount is %lld * %d / 100 = $%lld.", (long long)g->v, pct, (long long)off);
    step(g, "%s pays %lld - %lld = $%lld.", g->hero->name, (long long)g->v, (long long)off,
         (long long)(g->v - off));
    g->v -= off;
    g->discounted = 1;
    ask(g, "How much does %s pay after the discount?", g->hero->name);
    g->periodic = 0;
    return 2;
}

static int cost_change(gen *g) {
    int64_t bill = g->v <= 20 ? 20 : g->v <= 50 ? 50 : g->v <= 100 ? 100 : (g->v / 100 + 1) * 100;
    if (bill == g->v) bill += bill <= 50 ? 10 : 100;
    say(g, "%s pays with $%lld.", subj(g), (long long)bill);
    step(g, "%s gets %lld - %lld = $%lld in change.", g->hero->name, (long long)bill,
         (long long)g->v, (long long)(bill - g->v));
    g->v = bill - g->v;
    ask(g, "How much change does %s get?", g->hero->name);
    return 1;
}

static int d_more(gen *g) {
    int64_t d = rng_range(&g->r, 2, g->v / 2 > 3 ? g->v / 2 : 3);
    say(g, "After a break, %s goes another %lld miles.", he(g), (long long)d);
    step(g, "%s travels %lld + %lld = %lld miles in all.", g->hero->name, (long long)g->v,
         (long long)d, (long long)(g->v + d));
    g->v += d;
    ask(g, "How many miles does %s travel in all?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int d_back(gen *g) {
    if (g->returned || !g->periodic) return -1; /* right after the trip itself */
    say(g, "Then %s goes back home along the same route.", he(g));
    step(g, "The round trip is %lld * 2 = %lld miles.", (long long)g->v, (long long)(g->v * 2));
    g->v *= 2;
    g->returned = 1; /* still one occasion: "every week" may follow */
    ask(g, "How many miles does %s travel there and back?", g->hero->name);
    return 1;
}

static int d_gas(gen *g) {
    if (!g->car) return -1;
    int64_t m = pick_divisor(g, g->v, 15, 40);
    if (!m) return -1;
    say(g, "%s car goes %lld miles on one gallon of gas.", his(g),
        (long long)m);
    step(g, "%s uses %lld / %lld = %lld gallons of gas.", g->hero->name, (long long)g->v,
         (long long)m, (long long)(g->v / m));
    g->v /= m;
    g->kind = Q_COUNT;
    g->it = NULL;
    g->unit_sg = "gallon";
    g->unit_pl = "gallons";
    g->sellable = 0;
    g->gas = 1;
    g->car = 0;
    ask(g, "How many gallons of gas does %s use?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int t_more(gen *g) {
    int64_t d = rng_range(&g->r, 1, 6) * 5;
    say(g, "%s also spends %lld minutes cleaning up afterwards.", subj(g), (long long)d);
    step(g, "%s spends %lld + %lld = %lld minutes in total.", g->hero->name, (long long)g->v,
         (long long)d, (long long)(g->v + d));
    g->v += d;
    ask(g, "How many minutes does %s spend in total?", g->hero->name);
    g->periodic = 0;
    return 1;
}

static int t_hours(gen *g) {
    if (g->v % 60 != 0 || g->v == 0) return -1;
    step(g, "That is %lld / 60 = %lld hours.", (long long)g->v, (long long)(g->v / 60));
    g->v /= 60;
    g->kind = Q_HOURS;
    ask(g, "How many hours does %s spend?", g->hero->name);
    return 1;
}

static int h_pay(gen *g) {
    if (g->hours_paid) return -1;
    int64_t w = rng_range(&g->r, 8, 30);
    say(g, "%s is paid $%lld for every hour of this work.", subj(g), (long long)w);
    step(g, "%s earns %lld * %lld = $%lld.", g->hero->name, (long long)g->v, (long long)w,
         (long long)(g->v * w));
    g->v *= w;
    g->kind = Q_MONEY;
    g->hours_paid = 1;
    ask(g, "How much money does %s earn?", g->hero->name);
    return 1;
}

static int cost_split(gen *g) {
    int64_t k = pick_divisor(g, g->v, 3, 6);
    if (!k) return -1;
    say(g, "%s and %lld friends split the cost equally.", g->hero->name, (long long)(k - 1));
    step(g, "There are %lld + 1 = %lld people.", (long long)(k - 1), (long long)k);
    step(g, "Each person pays %lld / %lld = $%lld.", (long long)g->v, (long long)k,
         (long long)(g->v / k));
    g->v /= k;
    ask(g, "How much does %s pay?", g->hero->name);
    return 2;
}

static int d_hours(gen *g) {
    if (g->returned || g->repeated) return -1;
    int64_t s = pick_divisor(g, g->v, 2, 12);
    if (!s || g->v / s < 2) return -1;
    say(g, "%s friend covers the same distance at %lld miles per hour.", his(g), (long long)s);
    step(g, "%s friend needs %lld / %lld = %lld hours.", g->hero->female ? "Her" : "His",
         (long long)g->v, (long long)s, (long long)(g->v / s));
    g->v /= s;
    g->kind = Q_HOURS;
    g->hours_paid = 1; /* the hours are the friend's */
    ask(g, "How many hours does %s friend need?", his(g));
    return 1;
}

static int t_per_day(gen *g) {
    int64_t k = pick_divisor(g, g->v, 2, 7);
    if (!k) return -1;
    say(g, "%s wants to spread the same total evenly over %lld days instead.", subj(g),
        (long long)k);
    step(g, "That is %lld / %lld = %lld minutes a day.", (long long)g->v, (long long)k,
         (long long)(g->v / k));
    g->v /= k;
    ask(g, "How many minutes a day would %s spend?", g->hero->name);
    return 1;
}

static int c_next_week(gen *g) {
    if (!g->periodic || !g->it || g->unit_pl != g->it->pl || g->repeated) return -1;
    /* only after "fills N baskets" / "every day for N days": a week's amount */
    if (!g->category || (strcmp(g->category, "groups") && strcmp(g->category, "rates"))) return -1;
    int64_t m = rng_range(&g->r, 2, 4), t = g->v * m;
    if (!fits(g->v + t)) return -1;
    if (m == 2)
        say(g, "The next week, %s %s twice as many %s.", he(g), g->it->verb, g->it->pl);
    else
        say(g, "The next week, %s %s %lld times as many %s.", he(g), g->it->verb, (long long)m,
            g->it->pl);
    step(g, "The next week, %s %s %lld * %lld = %lld %s.", g->hero->name, g->it->verb,
         (long long)g->v, (long long)m, (long long)t, g->it->pl);
    step(g, "In the two weeks, %s %s %lld + %lld = %lld %s.", g->hero->name, g->it->verb,
         (long long)g->v, (long long)t, (long long)(g->v + t), g->it->pl);
    g->v += t;
    g->repeated = 1; /* "every week" would now contradict the story */
    g->periodic = 0;
    ask(g, "How many %s does %s %s in the two weeks?", g->it->pl, g->hero->name, g->it->base);
    return 2;
}

/* The other person's amount relative to the hero's: ends the story. */
static int c_other_has(gen *g) {
    if (g->gas || g->v < 1) return -1;
    char buf[96];
    int64_t m = rng_range(&g->r, 2, 5), x = g->v * m;
    if (!fits(x)) return -1;
    const char *o = other_ref(g, buf, sizeof buf);
    if (m == 2)
        say(g, "%s has twice as many %s as %s has now.", o, g->unit_pl, g->hero->name);
    else
        say(g, "%s has %lld times as many %s as %s has now.", o, (long long)m, g->unit_pl,
            g->hero->name);
    step(g, "%s has %lld * %lld = %lld %s.", g->other->name, (long long)g->v, (long long)m,
         (long long)x, g->unit_pl);
    g->v = x;
    ask(g, "How many %s does %s have?", g->unit_pl, g->other->name);
    return 1;
}

static int c_other_total(gen *g) {
    if (g->gas || g->v < 1) return -1;
    char buf[96];
    int64_t d = base_num(g), x = g->v + d;
    if (!fits(x + g->v)) return -1;
    const char *o = other_ref(g, buf, sizeof buf);
    say(g, "%s has %lld more %s than %s has now.", o, (long long)d, g->unit_pl, g->hero->name);
    step(g, "%s has %lld + %lld = %lld %s.", g->other->name, (long long)g->v, (long long)d,
         (long long)x, g->unit_pl);
    step(g, "Together they have %lld + %lld = %lld %s.", (long long)g->v, (long long)x,
         (long long)(g->v + x), g->unit_pl);
    g->v += x;
    ask(g, "How many %s do %s and %s have together?", g->unit_pl, g->hero->name,
        g->other->name);
    return 2;
}

static int m_interest(gen *g) {
    static const int rates[] = {5, 10, 20, 25};
    int pct = rates[rng_range(&g->r, 0, 3)];
    if ((g->v * pct) % 100 != 0 || g->v * pct / 100 == 0) return -1;
    int64_t i = g->v * pct / 100;
    say(g, "%s puts the money in a savings account that pays %d%% interest after one year.",
        subj(g), pct);
    step(g, "The interest is %lld * %d / 100 = $%lld.", (long long)g->v, pct, (long long)i);
    step(g, "After one year, %s has %lld + %lld = $%lld.", g->hero->name, (long long)g->v,
         (long long)i, (long long)(g->v + i));
    g->v += i;
    ask(g, "How much money does %s have after one year?", g->hero->name);
    g->periodic = 0;
    return 2;
}

static const op OPS[] = {
    {Q_COUNT, 1, 0, 2, c_more},      {Q_COUNT, 1, 0, 2, c_less},       {Q_COUNT, 2, 0, 1, c_frac},
    {Q_COUNT, 2, 0, 1, c_pct_bad},   {Q_COUNT, 1, 0, 1, c_keep_frac},  {Q_COUNT, 1, 1, 1, c_share},
    {Q_COUNT, 1, 0, 1, c_pack},      {Q_COUNT, 1, 0, 1, c_sell},       {Q_COUNT, 1, 0, 1, c_gas_cost},
    {Q_COUNT, 1, 0, 1, c_chore_time}, {-1, 1, 0, 1, any_repeat},
    {Q_MONEY, 1, 0, 2, m_spend},     {Q_MONEY, 1, 0, 2, m_more},       {Q_MONEY, 2, 0, 1, m_spend_frac},
    {Q_MONEY, 1, 0, 1, m_save_pct},  {Q_MONEY, 1, 0, 1, m_buy},        {Q_MONEY, 1, 1, 1, m_envelopes},
    {Q_COST, 1, 0, 1, cost_fee},     {Q_COST, 2, 0, 1, cost_discount}, {Q_COST, 1, 1, 1, cost_change},
    {Q_COST, 2, 1, 1, cost_split},
    {Q_MILES, 1, 0, 1, d_more},      {Q_MILES, 1, 0, 1, d_back},       {Q_MILES, 1, 0, 1, d_gas},
    {Q_MILES, 1, 1, 1, d_hours},
    {Q_MINUTES, 1, 0, 1, t_more},    {Q_MINUTES, 1, 0, 1, t_hours},    {Q_MINUTES, 1, 1, 1, t_per_day},
    {Q_HOURS, 1, 0, 1, h_pay},
    {Q_COUNT, 2, 0, 1, c_next_week}, {Q_COUNT, 1, 1, 1, c_other_has}, {Q_COUNT, 2, 1, 1, c_other_total},
    {Q_MONEY, 2, 0, 1, m_interest},
};
#define N_OPS ((int)(sizeof OPS / sizeof OPS[0]))

typedef struct start_op {
    int cost;
    int whole; /* the story is complete: no op may follow */
    int (*fn)(gen *g);
} start_op;
static const start_op STARTS[] = {
    {0, 0, start_have},     {1, 0, start_containers}, {1, 0, start_daily},
    {2, 0, start_two_days}, {1, 0, start_wage},       {0, 0, start_savings},
    {1, 0, start_trip},     {1, 0, start_practice},   {1, 0, start_shopping},
    {1, 0, start_compare},  {2, 1, start_compare_total},
};
#define N_STARTS ((int)(sizeof STARTS / sizeof STARTS[0]))

static void undo(gen *g, size_t qlen, size_t slen, int steps) {
    g->q->len = qlen;
    g->sol->len = slen;
    if (g->q->data) g->q->data[qlen] = 0;
    if (g->sol->data) g->sol->data[slen] = 0;
    g->steps = steps;
}

/* Builds one chain of exactly `target` steps. 0 ok, -1 if it got stuck (caller retries with
 * the continued PRNG stream, so the result is still deterministic). */
static int build_chain(gen *g, int target) {
    int order[N_STARTS > N_OPS ? N_STARTS : N_OPS];
    /* start: a random one whose cost fits */
    for (int tries = 0;; tries++) {
        if (tries > 50) return -1;
        const start_op *s = &STARTS[rng_range(&g->r, 0, N_STARTS - 1)];
        if (s->cost > target || (s->whole && s->cost != target)) continue;
        size_t qlen = g->q->len, slen = g->sol->len;
        int st = g->steps;
        if (s->fn(g) >= 0) break;
        undo(g, qlen, slen, st); /* ops check before writing, but stay safe */
    }
    while (g->steps < target) {
        int rem = target - g->steps, n = 0;
        for (int i = 0; i < N_OPS; i++) {
            const op *o = &OPS[i];
            if ((o->kind != -1 && o->kind != g->kind) || o->cost > rem) continue;
            if (o->final_only && o->cost != rem) continue;
            if (g->uses[i] >= o->max_uses) continue;
            order[n++] = i;
        }
        /* Fisher-Yates shuffle, then the first op that applies */
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rng_range(&g->r, 0, i), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int applied = 0;
        for (int i = 0; i < n && !applied; i++) {
            size_t qlen = g->q->len, slen = g->sol->len;
            int st = g->steps;
            if (OPS[order[i]].fn(g) >= 0) {
                applied = 1;
                g->uses[order[i]]++;
            }
            else undo(g, qlen, slen, st);
        }
        if (!applied) return -1;
    }
    return 0;
}

/* ---------------- public API ---------------- */

void synth_params_default(synth_params *p) {
    p->n = 500;
    p->seed = 1;
    p->steps_min = 2;
    p->steps_max = 6;
    p->num_min = 2;
    p->num_max = 100;
}

int synth_params_check(const synth_params *p, char *err, size_t errlen) {
    if (p->n < 0 || p->n > 10000000) return util_err(err, errlen, "synth: n must be in [0, 10000000], got %d", p->n);
    if (p->steps_min < 1 || p->steps_max > SYNTH_MAX_STEPS || p->steps_min > p->steps_max)
        return util_err(err, errlen, "synth: steps must satisfy 1 <= min <= max <= %d, got [%d, %d]",
                        SYNTH_MAX_STEPS, p->steps_min, p->steps_max);
    if (p->num_min < 1 || p->num_max > 100000 || p->num_min >= p->num_max)
        return util_err(err, errlen, "synth: numbers must satisfy 1 <= lo < hi <= 100000, got [%d, %d]",
                        p->num_min, p->num_max);
    return 0;
}

int synth_problem(const synth_params *p, int index, util_buf *question, util_buf *solution,
                  int64_t *answer, const char **category, char *err, size_t errlen) {
    if (synth_params_check(p, err, errlen)) return -1;
    gen g;
    memset(&g, 0, sizeof g);
    rng_seed(&g.r, p->seed, (uint64_t)index);
    g.q = question;
    g.sol = solution;
    g.lo = p->num_min;
    g.hi = p->num_max;
    size_t q0 = question->len, s0 = solution->len;
    int target = (int)rng_range(&g.r, p->steps_min, p->steps_max);
    for (int attempt = 0;; attempt++) {
        rng keep = g.r;
        memset(&g, 0, sizeof g);
        g.r = keep;
        g.q = question;
        g.sol = solution;
        g.lo = p->num_min;
        g.hi = p->num_max;
        question->len = q0;
        solution->len = s0;
        if (question->data) question->data[q0] = 0;
        if (solution->data) solution->data[s0] = 0;
        g.hero = PICK(&g.r, PEOPLE);
        do g.other = PICK(&g.r, PEOPLE);
        while (g.other == g.hero);
        if (build_chain(&g, target) == 0 && g.v >= 0) break;
        if (attempt > 1000) return util_err(err, errlen, "synth: problem %d: no chain found", index);
    }
    /* the question: the story, then the ask */
    say(&g, "%s", g.ask);
    util_buf_printf(solution, "#### %lld", (long long)g.v);
    *answer = g.v;
    if (category) *category = g.category ? g.category : "synth";
    return g.steps;
}

int synth_generate(const synth_params *p, job_dataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (synth_params_check(p, err, errlen)) return -1;
    util_buf q, s;
    util_buf_init(&q);
    util_buf_init(&s);
    for (int i = 0; i < p->n; i++) {
        int64_t ans;
        const char *cat;
        q.len = s.len = 0;
        int steps = synth_problem(p, i, &q, &s, &ans, &cat, err, errlen);
        if (steps < 0) {
            util_buf_free(&q);
            util_buf_free(&s);
            job_dataset_free(out);
            return -1;
        }
        char id[64], a[32];
        snprintf(id, sizeof id, "synth-%llu-%d", (unsigned long long)p->seed, i);
        snprintf(a, sizeof a, "%lld", (long long)ans);
        job_dataset_push(out, id, q.data, s.data, a, cat, steps);
    }
    util_buf_free(&q);
    util_buf_free(&s);
    return 0;
}

int synth_write_jsonl(const job_dataset *d, FILE *f) {
    util_buf line;
    util_buf_init(&line);
    for (int i = 0; i < d->n; i++) {
        line.len = 0;
        util_buf_append(&line, "{\"question\": ", 13);
        util_buf_json_str(&line, d->items[i].question, strlen(d->items[i].question));
        util_buf_append(&line, ", \"answer\": ", 12);
        util_buf_json_str(&line, d->items[i].solution, strlen(d->items[i].solution));
        util_buf_append(&line, "}\n", 2);
        fwrite(line.data, 1, line.len, f);
    }
    util_buf_free(&line);
    return ferror(f) ? -1 : 0;
}
