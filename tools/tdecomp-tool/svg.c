/* SVG line plots for `spectrum`. */
#include "svg.h"
#include <math.h>
#include <string.h>

enum { PW = 470, PH = 340, ML = 72, MR = 16, MT = 34, MB = 52, HEAD = 30 };
static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

static void text_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

/* 1, 2 or 5 times a power of ten, giving about `want` intervals over span. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

typedef struct range { double lo, hi; } range;

static void data_range(const svg_panel *p, int axis_y, range *r)
{
    r->lo = INFINITY;
    r->hi = -INFINITY;
    for (int s = 0; s < p->nseries; s++)
        for (size_t i = 0; i < p->series[s].n; i++) {
            double v = axis_y ? p->series[s].y[i] : p->series[s].x[i];
            if (!isfinite(v) || (axis_y && p->logy && v <= 0)) continue;
            if (v < r->lo) r->lo = v;
            if (v > r->hi) r->hi = v;
        }
    if (!(r->lo <= r->hi)) { r->lo = axis_y && p->logy ? 0.1 : 0; r->hi = 1; }
    if (axis_y && p->logy) {
        r->lo = pow(10, floor(log10(r->lo)));
        r->hi = pow(10, ceil(log10(r->hi)));
        if (r->hi <= r->lo) r->hi = r->lo * 10;
    } else {
        if (axis_y && r->lo > 0) r->lo = 0;   /* errors and counts read best from zero */
        if (r->hi == r->lo) r->hi = r->lo + 1;
        double st = nice_step(r->hi - r->lo, 5);
        r->lo = floor(r->lo / st) * st;
        r->hi = ceil(r->hi / st) * st;
    }
}

static void panel(FILE *f, const svg_panel *p, double ox)
{
    range xr, yr;
    data_range(p, 0, &xr);
    data_range(p, 1, &yr);
    const double x0 = ox + ML, x1 = ox + PW - MR, y0 = HEAD + PH - MB, y1 = HEAD + MT;
#define SX(v) (x0 + ((v) - xr.lo) / (xr.hi - xr.lo) * (x1 - x0))
#define SY(v) (p->logy ? y0 - (log10((v) > 0 ? (v) : yr.lo) - log10(yr.lo)) / (log10(yr.hi) - log10(yr.lo)) * (y0 - y1) \
                       : y0 - ((v) - yr.lo) / (yr.hi - yr.lo) * (y0 - y1))
    fprintf(f, "<g class=\"panel\">\n<text x=\"%.1f\" y=\"%d\" font-size=\"14\" text-anchor=\"middle\">", (x0 + x1) / 2, HEAD + 20);
    text_escaped(f, p->title);
    fprintf(f, "</text>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x0, y1, x1 - x0, y0 - y1);
    /* x ticks */
    double st = nice_step(xr.hi - xr.lo, 5);
    for (double v = xr.lo; v <= xr.hi + st * 1e-9; v += st) {
        double x = SX(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", x, y0, x, y1);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n", x, y0 + 15, fabs(v) < st * 1e-9 ? 0.0 : v);
    }
    /* y ticks */
    if (p->logy) {
        const int d0 = (int)lround(log10(yr.lo)), d1 = (int)lround(log10(yr.hi)), every = (d1 - d0 + 7) / 8;
        for (int d = d0; d <= d1; d += every ? every : 1) {
            double y = SY(pow(10, d));
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", x0, y, x1, y);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">1e%d</text>\n", x0 - 5, y + 4, d);
        }
    } else {
        st = nice_step(yr.hi - yr.lo, 5);
        for (double v = yr.lo; v <= yr.hi + st * 1e-9; v += st) {
            double y = SY(v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", x0, y, x1, y);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n", x0 - 5, y + 4, fabs(v) < st * 1e-9 ? 0.0 : v);
        }
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">", (x0 + x1) / 2, y0 + 36);
    text_escaped(f, p->xlabel);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">",
            ox + 16, (y0 + y1) / 2, ox + 16, (y0 + y1) / 2);
    text_escaped(f, p->ylabel);
    fputs("</text>\n", f);
    size_t lw = 0; /* legend width from the longest label (about 6.3 px per character at 11 px) */
    for (int s = 0; s < p->nseries; s++)
        if (p->series[s].label && strlen(p->series[s].label) > lw) lw = strlen(p->series[s].label);
    const double lx = x1 - 34 - 6.3 * (double)lw;
    for (int s = 0; s < p->nseries; s++) {
        const svg_series *se = &p->series[s];
        const char *col = colors[s % (int)(sizeof colors / sizeof colors[0])];
        fprintf(f, "<polyline class=\"series\" data-label=\"");
        text_escaped(f, se->label);
        fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        int first = 1;
        for (size_t i = 0; i < se->n; i++) {
            if (!isfinite(se->x[i]) || !isfinite(se->y[i])) continue;
            fprintf(f, "%s%.2f,%.2f", first ? "" : " ", SX(se->x[i]), SY(se->y[i]));
            first = 0;
        }
        fputs("\"/>\n", f);
        /* legend, top right inside the frame */
        const double ly = y1 + 16 + 16 * s;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>", lx, ly - 4, lx + 20, ly - 4, col);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", lx + 25, ly);
        text_escaped(f, se->label);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
#undef SX
#undef SY
}

int svg_write(FILE *f, const char *title, const svg_panel *panels, int npanels)
{
    const int w = PW * (npanels > 0 ? npanels : 1), h = PH + HEAD;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"DejaVu Sans, Arial, sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"20\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">",
            w, h, w, h, w / 2);
    text_escaped(f, title);
    fputs("</text>\n", f);
    for (int i = 0; i < npanels; i++) panel(f, &panels[i], (double)i * PW);
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
