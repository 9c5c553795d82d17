/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/tools/dump_compare.c — compares two parameter dumps (raw f32).
 *
 *   dump_compare A B            exit 0 if the files are byte-identical
 *   dump_compare A B --rel TOL  exit 0 if ||a-b|| / ||b|| <= TOL (L2 norms)
 *
 * The relative test is norm-wise on purpose: under Adam, an element whose
 * gradient is near zero can flip sign from a different summation order and
 * move by 2 * lr, so element-wise agreement is not a property runs have.
 *
 * Prints what it found either way, so a failing test shows how far off.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *load(const char *path, long *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dump_compare: cannot open '%s'\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    rewind(f);
    float *data = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (!data || fread(data, 1, (size_t)bytes, f) != (size_t)bytes || bytes % 4 != 0) {
        fprintf(stderr, "dump_compare: cannot read '%s' as f32\n", path);
        free(data);
        data = NULL;
    }
    fclose(f);
    *count = bytes / 4;
    return data;
}

/* 0 when a matches b (byte-identical, or within rel_tol when given), 1 when
 * not, 2 when either could not be read. */
static int compare(const float *a, long na, const float *b, long nb, const char *rel_tol)
{
    if (!a || !b)
        return 2;
    if (na != nb || na == 0) {
        printf("dump_compare: sizes differ or empty: %ld vs %ld floats\n", na, nb);
        return 1;
    }
    double max_diff = 0, diff_sq = 0, ref_sq = 0;
    long first = -1;
    for (long i = 0; i < na; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (memcmp(&a[i], &b[i], 4) != 0 && first < 0)
            first = i;
        max_diff = d > max_diff ? d : max_diff;
        diff_sq += d * d;
        ref_sq += (double)b[i] * b[i];
    }
    double rel = ref_sq > 0 ? sqrt(diff_sq / ref_sq) : sqrt(diff_sq);
    printf("dump_compare: %ld floats, first differing element %ld, max abs diff "
           "%.3g, norm-wise relative difference %.3g\n",
           na, first, max_diff, rel);
    if (!rel_tol)
        return first < 0 ? 0 : 1;
    return rel <= atof(rel_tol) ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--rel") == 0)) {
        fprintf(stderr, "usage: dump_compare A B [--rel TOL]\n");
        return 2;
    }
    long na = 0, nb = 0;
    float *a = load(argv[1], &na), *b = load(argv[2], &nb);
    int rc = compare(a, na, b, nb, argc == 5 ? argv[4] : NULL);
    free(a);
    free(b);
    return rc;
}
