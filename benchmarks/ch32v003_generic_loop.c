/* A generic fully connected engine, written the way interpreter-style MCU runtimes
 * do it, as the baseline for tinycc-nn's generated CH32V003 code.
 *
 * One loop nest serves every layer: for each output neuron, one loop over the
 * inputs unpacks the next weight code from the packed words (shift and mask),
 * decodes it to a weight through the layer's table, and adds weight * input with a
 * multiplier-free shift-and-add (the CH32V003 has no multiplier; `*` would call
 * libgcc's __mulsi3, which is slower still), skipping zero inputs like BitNetMCU's
 * engine does.  Then bias, rounding shift and clamp.
 * Nothing is specialized to the model: the layer descriptions are data, generated
 * into generic_model.h by benchmarks/ch32v003.py from the same compiled IR.
 *
 * Supports what the benchmark models need: a chain of dense layers with a
 * per-layer shift (floor or round half to even/odd), per-neuron bias (rounding
 * constant folded in), clamp bounds, activations that fit int16.
 */
#include "model.h"

enum { NN_FLOOR = 0, NN_HALF_EVEN = 1, NN_HALF_ODD = 2 };

typedef struct {
    uint16_t n_in, n_out;
    uint8_t code_bits;          /* bits per weight code; codes LSB first, rows word-aligned */
    uint8_t shift, rounding;
    int32_t lo, hi;
    const int8_t *decode;       /* code -> weight */
    const uint32_t *weights;    /* row j (one output neuron): ceil(n_in / per word) words */
    const int32_t *bias;        /* bias + rounding constant, per neuron */
} nn_layer_t;

/* NN_GENERIC_LAYERS, NN_GENERIC_MAX_WIDTH, the weight/decode/bias arrays, nn_layers[] */
#include "generic_model.h"

static int16_t nn_buf_a[NN_GENERIC_MAX_WIDTH], nn_buf_b[NN_GENERIC_MAX_WIDTH];

static int32_t nn_requant(int32_t t, const nn_layer_t *L)
{
    int s = L->shift;
    int32_t q = t >> s;
    if (s > 0 && L->rounding != NN_FLOOR) {
        int32_t rem = t - (int32_t)((uint32_t)q << s), half = (int32_t)1 << (s - 1);
        int odd = (int)(q & 1);
        if (rem > half || (rem == half && odd == (L->rounding == NN_HALF_EVEN)))
            q++;
    }
    return q < L->lo ? L->lo : q > L->hi ? L->hi : q;
}

int nn_infer(const nn_input_t *input, nn_output_t *output)
{
    int16_t *x = nn_buf_a, *y = nn_buf_b;
    for (int i = 0; i < NN_INPUT_SIZE; i++)
        x[i] = input[i];
    for (int l = 0; l < NN_GENERIC_LAYERS; l++) {
        const nn_layer_t *L = &nn_layers[l];
        const uint32_t *wp = L->weights;
        const int bits = L->code_bits, per_word = 32 / bits;
        const uint32_t mask = (1u << bits) - 1u;
        for (int j = 0; j < L->n_out; j++) {
            uint32_t acc = (uint32_t)L->bias[j];
            const int16_t *xp = x;
            for (int i = 0; i < L->n_in; i += per_word) {
                uint32_t chunk = *wp++;
                int n = L->n_in - i < per_word ? L->n_in - i : per_word;
                for (int e = 0; e < n; e++, chunk >>= bits) {
                    int32_t in = *xp++;
                    if (in == 0)
                        continue;       /* zero activations cost nothing, as in BitNetMCU */
                    int32_t w = L->decode[chunk & mask];
                    /* w * in without a multiplier: one conditional add per bit of |w| */
                    uint32_t m = (uint32_t)(w < 0 ? -w : w);
                    uint32_t u = w < 0 ? -(uint32_t)in : (uint32_t)in;
                    while (m) {
                        if (m & 1u)
                            acc += u;
                        u <<= 1;
                        m >>= 1;
                    }
                }
            }
            y[j] = (int16_t)nn_requant((int32_t)acc, L);
        }
        int16_t *t = x;
        x = y;
        y = t;
    }
    int best = 0;
    for (int j = 0; j < NN_OUTPUT_SIZE; j++) {
        output[j] = (nn_output_t)x[j];
        if (x[j] > x[best])
            best = j;
    }
    return best;
}
