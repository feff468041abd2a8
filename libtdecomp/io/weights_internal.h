/* Weight-file helpers shared by the io layer's readers and writer (not installed). */
#ifndef TDECOMP_WEIGHTS_INTERNAL_H
#define TDECOMP_WEIGHTS_INTERNAL_H

#include "io/io_internal.h"

/* Reads a list-of-strings attribute in any of Keras' forms: variable-length or fixed-length
 * strings (fixed ones not necessarily NUL-terminated), an empty float64 array (an empty list),
 * or split into name0, name1, ... when large. *out is malloc'ed (free it); *n its length.
 * Returns 0 when absent (with *n = 0), 1 when read, -1 when malformed. *vlen says the form. */
int td__h5_read_str_list(hid_t obj, const char *name, char (**out)[256], size_t *n, int *vlen);

/* Reads a scalar string attribute into buf (vlen or fixed); 1 read, 0 absent, -1 malformed. */
int td__h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t len);

/* Writes a list-of-strings attribute as variable-length (vlen) or fixed-length strings. */
td_status td__h5_write_str_list(hid_t obj, const char *name, char (*list)[256], size_t n, int vlen);

/* Fills every layer's admits (after reading the structure and after a layer spec). */
td_status td__model_admissions(td_model *m, td_error *err);

#endif
