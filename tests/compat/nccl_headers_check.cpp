// Compiled only into moe_nccl_compat (cmake/nccl_compat.cmake), beside
// comm/nccl_communicator.cpp: fails that build unless it sees the old NCCL's headers rather
// than the installed NCCL's, without which compiling the communicator there would prove nothing.
#include <nccl.h>

static_assert(NCCL_VERSION_CODE < NCCL_VERSION(2, 28, 0),
              "moe_nccl_compat must compile against NCCL headers older than 2.28");
