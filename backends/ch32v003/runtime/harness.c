/* Test harness for a generated model: one inference on a global input.
 *
 * The emulator finds every object below by name in the ELF symbol table: it
 * writes nn_harness_input after start.S has zeroed .bss, runs main, then reads
 * nn_harness_result and nn_harness_output (whose size it takes from the
 * symbol). The two nn_harness_*_kind words tell it the element types without
 * debug information: element size in bytes, plus 0x100 when signed.
 */
#include "model.h"

#define NN_ELEMENT_KIND(type) ((int)sizeof(type) | (((type)-1 < (type)1) ? 0x100 : 0))

nn_input_t nn_harness_input[NN_INPUT_SIZE];
nn_output_t nn_harness_output[NN_OUTPUT_SIZE];
int nn_harness_result;
/* Nothing in the firmware reads these, so link.ld KEEPs their section. */
#define NN_HARNESS_INFO __attribute__((used, section(".harness_info")))
NN_HARNESS_INFO const int nn_harness_input_kind = NN_ELEMENT_KIND(nn_input_t);
NN_HARNESS_INFO const int nn_harness_output_kind = NN_ELEMENT_KIND(nn_output_t);

int main(void)
{
    nn_harness_result = nn_infer(nn_harness_input, nn_harness_output);
    return 0;
}
