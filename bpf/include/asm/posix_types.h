/* The BPF target has no asm/ directory of its own; the generic definitions are the right
 * ones for it (64-bit, little or big endian decided by the compiler). This shim lets
 * <linux/bpf.h> compile without depending on the build machine's multiarch path. */
#include <asm-generic/posix_types.h>
