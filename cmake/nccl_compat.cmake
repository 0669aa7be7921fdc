# comm/nccl_communicator.cpp compiled a second time, against NCCL 2.18's headers (the oldest NCCL
# the CUDA build supports: ncclCommSplit appeared in 2.18; clusters commonly run 2.18-2.27,
# while this machine and CI install 2.28). A call newer than 2.18 without a NCCL_VERSION_CODE
# guard then fails this build here rather than on a cluster. scripts/fetch-gpu-headers.sh puts
# the headers in .deps/nccl-2.18 (from PyPI's nvidia-nccl-cu12 wheel); the object is never linked.
set(MOE_NCCL_COMPAT_INCLUDE ${MOE_GPU_DEPS_DIR}/nccl-2.18/include)
set(MOE_HAVE_NCCL_COMPAT OFF)
if(EXISTS ${MOE_NCCL_COMPAT_INCLUDE}/nccl.h)
  set(MOE_HAVE_NCCL_COMPAT ON)
  add_library(moe_nccl_compat OBJECT ${CMAKE_SOURCE_DIR}/comm/nccl_communicator.cpp
                                     ${CMAKE_SOURCE_DIR}/tests/compat/nccl_headers_check.cpp)
  # BEFORE and -I: ahead of moe_lib's NCCL directory, which holds the installed nccl.h.
  target_include_directories(moe_nccl_compat BEFORE PRIVATE ${MOE_NCCL_COMPAT_INCLUDE})
  # moe_lib's include directories and definitions, so the file compiles as it does there.
  target_link_libraries(moe_nccl_compat PRIVATE moe_lib)
  target_compile_options(moe_nccl_compat PRIVATE -Wall -Wextra -Wno-unused-parameter)
endif()
message(STATUS "NCCL 2.18 compatibility compile of the NCCL communicator: ${MOE_HAVE_NCCL_COMPAT}")
