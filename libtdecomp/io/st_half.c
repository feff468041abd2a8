/* safetensors element types and the float conversions: widening is exact; narrowing is one
 * round-to-nearest-even from the double's bits (never through float, which would round twice). */
#include <math.h>
#include <string.h>
#include "io/st_internal.h"

/* char arrays, not pointers: the table needs no relocation and stays read-only */
typedef struct dtype_info {
    char name[10];
    unsigned char bits;
} dtype_info;

static const dtype_info DTYPES[TD__ST_NDTYPES] = {
    [TD__ST_BOOL] = {"BOOL", 8},      [TD__ST_U8] = {"U8", 8},         [TD__ST_I8] = {"I8", 8},
    [TD__ST_I16] = {"I16", 16},       [TD__ST_U16] = {"U16", 16},      [TD__ST_F16] = {"F16", 16},
    [TD__ST_BF16] = {"BF16", 16},     [TD__ST_I32] = {"I32", 32},      [TD__ST_U32] = {"U32", 32},
    [TD__ST_F32] = {"F32", 32},       [TD__ST_F64] = {"F64", 64},      [TD__ST_I64] = {"I64", 64},
    [TD__ST_U64] = {"U64", 64},       [TD__ST_C64] = {"C64", 64},      [TD__ST_F8_E5M2] = {"F8_E5M2", 8},
    [TD__ST_F8_E4M3] = {"F8_E4M3", 8}, [TD__ST_F8_E8M0] = {"F8_E8M0", 8}, [TD__ST_F4] = {"F4", 4},
    [TD__ST_F6_E2M3] = {"F6_E2M3", 6}, [TD__ST_F6_E3M2] = {"F6_E3M2", 6},
};

const char *td__st_dtype_name(td__st_dtype dt)
{
    return (unsigned)dt < TD__ST_NDTYPES ? DTYPES[dt].name : "?";
}

int td__st_dtype_parse(const char *name, td__st_dtype *dt)
{
    for (int i = 0; i < TD__ST_NDTYPES; i++)
        if (strcmp(name, DTYPES[i].name) == 0) {
            *dt = (td__st_dtype)i;
            return 1;
        }
    return 0;
}

unsigned td__st_dtype_bits(td__st_dtype dt)
{
    return (unsigned)dt < TD__ST_NDTYPES ? DTYPES[dt].bits : 0;
}

int td__st_dtype_is_float(td__st_dtype dt)
{
    return dt == TD__ST_F16 || dt == TD__ST_BF16 || dt == TD__ST_F32 || dt == TD__ST_F64;
}

td_dtype td__st_dtype_to_td(td__st_dtype dt)
{
    switch (dt) {
    case TD__ST_F16: return TD_DTYPE_F16;
    case TD__ST_BF16: return TD_DTYPE_BF16;
    case TD__ST_F32: return TD_DTYPE_F32;
    case TD__ST_F64: return TD_DTYPE_F64;
    default: return TD_DTYPE_OTHER;
    }
}

int td__st_dtype_from_td(td_dtype dtype, td__st_dtype *dt)
{
    switch (dtype) {
    case TD_DTYPE_F16: *dt = TD__ST_F16; return 1;
    case TD_DTYPE_BF16: *dt = TD__ST_BF16; return 1;
    case TD_DTYPE_F32: *dt = TD__ST_F32; return 1;
    case TD_DTYPE_F64: *dt = TD__ST_F64; return 1;
    default: return 0;
    }
}

/* IEEE binary64 fields */
#define D_MANT_BITS 52
#define D_EXP_MASK 0x7FFu
#define D_BIAS 1023
/* the narrow formats: binary16 and bfloat16 */
#define H_EBITS 5
#define H_MBITS 10
#define B_EBITS 8
#define B_MBITS 7

static uint64_t bits_of(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static double double_of(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* A value of a narrow binary format (ebits exponent, mbits fraction bits) widened exactly. */
static double narrow_to_double(uint32_t h, int ebits, int mbits)
{
    uint64_t sign = (uint64_t)((h >> (ebits + mbits)) & 1u) << 63;
    uint32_t e = (h >> mbits) & ((1u << ebits) - 1u);
    uint64_t m = h & ((1u << mbits) - 1u);
    int bias = (1 << (ebits - 1)) - 1;
    if (e == (1u << ebits) - 1u) /* inf, or NaN keeping its payload (and quiet bit) */
        return double_of(sign | ((uint64_t)D_EXP_MASK << D_MANT_BITS) | (m << (D_MANT_BITS - mbits)));
    if (e == 0) { /* zero or subnormal: m * 2^(1 - bias - mbits), exact */
        double v = ldexp((double)m, 1 - bias - mbits);
        return sign ? -v : v;
    }
    uint64_t de = (uint64_t)((int)e - bias + D_BIAS);
    return double_of(sign | (de << D_MANT_BITS) | (m << (D_MANT_BITS - mbits)));
}

/* x rounded once to the narrow format, ties to even; overflow to inf, NaN to a quiet NaN. */
static uint32_t double_to_narrow(double x, int ebits, int mbits)
{
    uint64_t b = bits_of(x);
    uint32_t sign = (uint32_t)(b >> 63) << (ebits + mbits);
    uint32_t e = (uint32_t)(b >> D_MANT_BITS) & D_EXP_MASK;
    uint64_t m = b & ((UINT64_C(1) << D_MANT_BITS) - 1);
    uint32_t emax = (1u << ebits) - 1u, inf = emax << mbits;
    int bias = (1 << (ebits - 1)) - 1;
    if (e == D_EXP_MASK) {
        if (m == 0) return sign | inf;
        uint32_t quiet = 1u << (mbits - 1);
        return sign | inf | quiet | (uint32_t)(m >> (D_MANT_BITS - mbits));
    }
    if (e == 0) return sign; /* zero or a double subnormal (< 2^-1022): far below any target ulp */
    int exp = (int)e - D_BIAS;
    uint64_t sig = m | (UINT64_C(1) << D_MANT_BITS); /* value = sig * 2^(exp - 52) */
    int normal = exp >= 1 - bias;
    if (normal && exp + bias >= (int)emax) return sign | inf;
    int shift = (D_MANT_BITS - mbits) + (normal ? 0 : (1 - bias - exp));
    if (shift > D_MANT_BITS + 1) return sign; /* below half the smallest subnormal */
    uint64_t q = sig >> shift, rem = sig & ((UINT64_C(1) << shift) - 1), half = UINT64_C(1) << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    /* q carries the implicit bit: adding it to (biased exponent - 1) << mbits lets a rounding
     * carry move into the exponent (and a subnormal become the smallest normal) by itself */
    uint32_t out = normal ? (((uint32_t)(exp + bias - 1) << mbits) + (uint32_t)q) : (uint32_t)q;
    if (out > inf) out = inf;
    return sign | out;
}

double td__f16_to_double(uint16_t h) { return narrow_to_double(h, H_EBITS, H_MBITS); }
double td__bf16_to_double(uint16_t h) { return narrow_to_double(h, B_EBITS, B_MBITS); }
uint16_t td__double_to_f16(double x) { return (uint16_t)double_to_narrow(x, H_EBITS, H_MBITS); }
uint16_t td__double_to_bf16(double x) { return (uint16_t)double_to_narrow(x, B_EBITS, B_MBITS); }

static uint64_t load_le(const unsigned char *p, int nbytes)
{
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store_le(unsigned char *p, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++) {
        p[i] = (unsigned char)(v & 0xFFu);
        v >>= 8;
    }
}

double td__st_decode(td__st_dtype dt, const unsigned char *p)
{
    switch (dt) {
    case TD__ST_F16: return td__f16_to_double((uint16_t)load_le(p, 2));
    case TD__ST_BF16: return td__bf16_to_double((uint16_t)load_le(p, 2));
    case TD__ST_F32: {
        uint32_t u = (uint32_t)load_le(p, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        return (double)f;
    }
    default: return double_of(load_le(p, 8));
    }
}

void td__st_encode(td__st_dtype dt, double x, unsigned char *p)
{
    switch (dt) {
    case TD__ST_F16: store_le(p, td__double_to_f16(x), 2); break;
    case TD__ST_BF16: store_le(p, td__double_to_bf16(x), 2); break;
    case TD__ST_F32: {
        float f = (float)x;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        store_le(p, u, 4);
        break;
    }
    default: store_le(p, bits_of(x), 8); break;
    }
}

td_status td__st_round(td__st_dtype dt, double *data, size_t n)
{
    if (!td__st_dtype_is_float(dt)) return TD_EDTYPE;
    if (n > 0 && !data) return TD_EINVAL;
    unsigned char tmp[8];
    if (dt != TD__ST_F64)
        for (size_t i = 0; i < n; i++) {
            td__st_encode(dt, data[i], tmp);
            data[i] = td__st_decode(dt, tmp);
        }
    return TD_OK;
}
