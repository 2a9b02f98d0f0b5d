/* Op codes of the elementwise loops (elementwise.c). The TypeScript side names the same ops in the same
 * order in src/kernels/native-ops.ts; test/native-opcodes.test.ts checks that the two lists agree. */
#ifndef TAPEGRAD_OPCODES_H
#define TAPEGRAD_OPCODES_H

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAXIMUM, OP_MINIMUM };
enum { OP_NEG, OP_RELU, OP_ABS, OP_SIGN, OP_STEP, OP_SQRT, OP_EXP, OP_LOG, OP_SIGMOID };

#endif
