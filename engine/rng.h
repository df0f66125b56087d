/* rng — the engine's random numbers: splitmix64 (Steele, Lea, Flood) and
 * xoshiro256** (Blackman, Vigna) seeded from it.  One implementation, so
 * that `seed N` means the same stream in the language, vis, training and
 * data shuffling, byte for byte on every machine.  No state is global: callers
 * own theirs (a uint64_t, or four for xoshiro).  Nothing is allocated.
 */
#ifndef CNNLENS_RNG_H
#define CNNLENS_RNG_H

#include <stdint.h>

/* Advances *state and returns the next splitmix64 output. */
uint64_t rng_splitmix64(uint64_t *state);

/* Fills a xoshiro256** state from a seed (four splitmix64 draws). */
void rng_xoshiro_seed(uint64_t s[4], uint64_t seed);
uint64_t rng_xoshiro_next(uint64_t s[4]);

/* [0, 1) from the top 53 bits of a draw. */
double rng_unit(uint64_t bits);

#endif
