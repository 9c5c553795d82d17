/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz_report.c — zero-report's reader of the per-rank memory
 * reports (tools/zero-report/reports.c and timeline.c: zr_read_report with
 * the timeline), and what it builds from an accepted report: the run check,
 * the table and its checks, each tier's series of one step, and the HTML page
 * (written to /dev/null).
 */
#include <stdlib.h>

#include "fuzz.h"
#include "zero_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[FUZZ_PATH];
    report r;
    fuzz_write("report.json", data, size, path);
    if (zr_read_report(path, 1, &r) == 0 && zr_check_run(&r, 1) == 0) {
        units u = zr_binary_units('M', 0, 2);
        tolerance tol = {.given = 1, .percent = 1.0, .bytes = 65536};
        summary s = {0};
        if (zr_summarize(&r, 1, &u, &tol, &s) == 0)
            zr_write_html("/dev/null", &r, 1, &s);
        zr_summary_free(&s);
        for (int t = 0; t < r.tl.ntiers; t++) {
            series sr = {0};
            if (zr_tier_series(path, &r.tl, r.tl.tiers[t], &sr) == 0 &&
                (sr.npoints < 1 || sr.ncats != r.tl.ncats))
                abort();
            zr_series_free(&sr);
        }
    }
    zr_report_free(&r);
    return 0;
}
