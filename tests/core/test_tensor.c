/* Tensor lifecycle and the status table. */
#include <string.h>
#include <math.h>
#include "common/testutil.h"

START_TEST(test_alloc_view_copy)
{
    size_t shape[3] = {3, 4, 2};
    td_tensor t, c, v;
    ck_assert_int_eq(td_tensor_alloc(&t, 3, shape), TD_OK);
    ck_assert_uint_eq(t.size, 24);
    ck_assert_int_eq(t.owner, 1);
    for (size_t i = 0; i < t.size; i++) ck_assert(t.data[i] == 0.0);
    for (size_t i = 0; i < t.size; i++) t.data[i] = (double)i;
    ck_assert_int_eq(td_tensor_copy(&c, &t), TD_OK);
    ck_assert(c.data != t.data);
    ck_assert(memcmp(c.data, t.data, 24 * sizeof(double)) == 0);
    ck_assert_int_eq(td_tensor_view(&v, 3, shape, t.data), TD_OK);
    ck_assert_int_eq(v.owner, 0);
    ck_assert_ptr_eq(v.data, t.data);
    td_tensor_free(&v);
    ck_assert_ptr_null(v.data);
    ck_assert(t.data[5] == 5.0); /* freeing a view leaves the memory alone */
    td_tensor_free(&c);
    td_tensor_free(&t);
    td_tensor_free(&t); /* zeroed: a second free is harmless */
    td_tensor_free(NULL);
}
END_TEST

START_TEST(test_overflow_and_bad_args)
{
    size_t huge[3] = {SIZE_MAX / 2, 3, 1};
    td_tensor t;
    ck_assert_int_eq(td_tensor_alloc(&t, 3, huge), TD_EOVERFLOW);
    ck_assert_ptr_null(t.data);
    size_t big[2] = {(size_t)1 << 31, (size_t)1 << 31}; /* 2^62 doubles overflows bytes */
    ck_assert_int_eq(td_tensor_alloc(&t, 2, big), TD_EOVERFLOW);
    size_t s1[1] = {4};
    ck_assert_int_eq(td_tensor_alloc(&t, TD_MAX_MODES + 1, s1), TD_EINVAL);
    ck_assert_int_eq(td_tensor_alloc(&t, -1, s1), TD_EINVAL);
    ck_assert_int_eq(td_tensor_view(&t, 1, s1, NULL), TD_EINVAL);
    size_t zero[2] = {0, 5};
    ck_assert_int_eq(td_tensor_alloc(&t, 2, zero), TD_OK);
    ck_assert_uint_eq(t.size, 0);
    td_tensor_free(&t);
    size_t eight[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    ck_assert_int_eq(td_tensor_alloc(&t, 8, eight), TD_OK);
    ck_assert_uint_eq(t.size, 16);
    td_tensor_free(&t);
    ck_assert_int_eq(td_tensor_alloc(&t, 0, NULL), TD_OK); /* scalar */
    ck_assert_uint_eq(t.size, 1);
    td_tensor_free(&t);
}
END_TEST

START_TEST(test_status_table)
{
    for (int s = 0; s < TD_STATUS_COUNT_; s++) {
        const char *n = td_status_name((td_status)s), *m = td_strerror((td_status)s);
        ck_assert(n && *n && strncmp(n, "TD_", 3) == 0);
        ck_assert(m && *m);
        ck_assert_str_ne(n, "TD_UNKNOWN");
        for (int o = 0; o < s; o++) {
            ck_assert_str_ne(n, td_status_name((td_status)o));
            ck_assert_str_ne(m, td_strerror((td_status)o));
        }
    }
    ck_assert_str_eq(td_status_name(TD_OK), "TD_OK");
    ck_assert_int_eq(TD_OK, 0);
    ck_assert_str_eq(td_status_name((td_status)9999), "TD_UNKNOWN");
    ck_assert_str_eq(td_strerror((td_status)-1), "unknown status");
}
END_TEST

START_TEST(test_rng_deterministic)
{
    td_rng a, b;
    td_rng_seed(&a, 42);
    td_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(td_rng_next(&a), td_rng_next(&b));
    td_rng_seed(&a, 43);
    td_rng_seed(&b, 42);
    ck_assert_uint_ne(td_rng_next(&a), td_rng_next(&b));
    double sum = 0, sq = 0;
    for (int i = 0; i < 20000; i++) {
        double u = td_rng_uniform(&a);
        ck_assert(u >= 0.0 && u < 1.0);
        double z = td_rng_normal(&b);
        sum += z;
        sq += z * z;
    }
    ck_assert(fabs(sum / 20000) < 0.05);
    ck_assert(fabs(sq / 20000 - 1.0) < 0.05);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_tensor");
    TCase *tc = tcase_create("tensor");
    tcase_add_test(tc, test_alloc_view_copy);
    tcase_add_test(tc, test_overflow_and_bad_args);
    tcase_add_test(tc, test_status_table);
    tcase_add_test(tc, test_rng_deterministic);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
