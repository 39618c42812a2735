/* tools/gendata.h — `jobctl gen-data`: writes built-in datasets (format synth) as JSONL.
 * jobctl dispatches `jobctl gen-data ...` here; see jobs/synth.h for the generator. */
#ifndef THINKFAST_GENDATA_H
#define THINKFAST_GENDATA_H

/* argv[0] is "gen-data"; returns the exit status (0 ok, 2 usage, 1 failure). */
int gendata_main(int argc, char **argv);

#endif
