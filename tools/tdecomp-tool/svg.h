/* A small SVG line-plot writer (no dependency): panels side by side, each with axes, ticks,
 * a legend and one polyline per series. */
#ifndef TDECOMP_TOOL_SVG_H
#define TDECOMP_TOOL_SVG_H

#include <stdio.h>

typedef struct svg_series {
    const char *label;
    const double *x, *y;
    size_t n;              /* points; NaN entries (missing values) are left out of the line */
} svg_series;

typedef struct svg_panel {
    const char *title, *xlabel, *ylabel;
    int logy;              /* log10 y axis: values <= 0 are drawn at the axis floor */
    const svg_series *series;
    int nseries;
} svg_panel;

/* Writes one SVG document with the panels in a row and an overall title. 0, or -1 on a write
 * error. Every polyline carries class="series" and data-label; its points attribute lists the
 * drawn points in order. */
int svg_write(FILE *f, const char *title, const svg_panel *panels, int npanels);

#endif
