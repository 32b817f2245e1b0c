// normsharp/dln_refs.h — the DLN lab's reference solutions on the interpolating set
// {X beta = y}, one enum for the lab that computes them (dln.h) and the report that reads
// them back from theory.json (report.h).
#ifndef NORMSHARP_DLN_REFS_H
#define NORMSHARP_DLN_REFS_H

// In this order in theory.json and in every table of them.
enum { NS_REF_MIN_L1, NS_REF_MIN_L2, NS_REF_MIN_SHARP, NS_REF_HYPENTROPY, NS_REF_GEN_OPT, NS_REF_COUNT };
// theory.json keys: "min_l1", "min_l2", "min_sharpness", "hypentropy", "gen_opt".
extern const char *const ns_dln_ref_key[NS_REF_COUNT];
#endif
