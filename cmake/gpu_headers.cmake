# The two GPU paths built on headers that Debian does not package (scripts/fetch-gpu-headers.sh
# puts them under .deps/, and install-deps.sh calls it):
#   CUTLASS's Hopper grouped GEMM for the experts (src/ops/cuda/cutlass/, compiled for sm_90a only,
#     since wgmma and TMA exist there alone; the runtime picks it on a compute-capability 9.0 GPU);
#   cuDNN's fused attention through cudnn-frontend (src/ops/cuda/cudnn/; cuDNN is loaded at run
#     time with dlopen, so the binaries start, and fall back to our own kernels, without it).
# Each is left out, with a line saying so, when its headers are missing. MOE_GPU_DEPS_DIR moves
# the folder; MOE_ENABLE_CUTLASS / MOE_ENABLE_CUDNN turn a path off.
set(MOE_GPU_DEPS_DIR ${CMAKE_SOURCE_DIR}/.deps CACHE PATH "Where fetch-gpu-headers.sh put CUTLASS, cudnn-frontend and cuDNN's headers")
option(MOE_ENABLE_CUTLASS "Build the CUTLASS Hopper grouped GEMM when its headers are found" ON)
option(MOE_ENABLE_CUDNN "Build the cuDNN fused attention when cudnn-frontend and cuDNN headers are found" ON)

set(MOE_HAVE_CUTLASS OFF)
if(MOE_ENABLE_CUTLASS)
  find_path(MOE_CUTLASS_INCLUDE cutlass/cutlass.h HINTS ${MOE_GPU_DEPS_DIR}/cutlass/include)
  file(GLOB MOE_CUTLASS_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/ops/cuda/cutlass/*.cu)
  if(MOE_CUTLASS_INCLUDE AND MOE_CUTLASS_SOURCES)
    set(MOE_HAVE_CUTLASS ON)
    add_library(moe_cutlass OBJECT ${MOE_CUTLASS_SOURCES})
    # sm_90a only: CMake 3.25 cannot name an arch-specific target, so the flags say it.
    set_target_properties(moe_cutlass PROPERTIES CUDA_ARCHITECTURES OFF POSITION_INDEPENDENT_CODE ON)
    target_include_directories(moe_cutlass PRIVATE ${CMAKE_SOURCE_DIR})
    target_include_directories(moe_cutlass SYSTEM PRIVATE ${MOE_CUTLASS_INCLUDE})
    target_compile_options(moe_cutlass PRIVATE
      -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -lineinfo)
    target_sources(moe_lib PRIVATE $<TARGET_OBJECTS:moe_cutlass>)
    target_compile_definitions(moe_lib PUBLIC MOE_HAVE_CUTLASS=1)
  endif()
endif()
message(STATUS "CUTLASS grouped GEMM (sm_90a): ${MOE_HAVE_CUTLASS}")

set(MOE_HAVE_CUDNN OFF)
if(MOE_ENABLE_CUDNN)
  find_path(MOE_CUDNN_FRONTEND_INCLUDE cudnn_frontend.h HINTS ${MOE_GPU_DEPS_DIR}/cudnn_frontend/include)
  find_path(MOE_CUDNN_INCLUDE cudnn.h HINTS ${MOE_GPU_DEPS_DIR}/cudnn/include)
  file(GLOB MOE_CUDNN_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/ops/cuda/cudnn/*.cpp)
  if(MOE_CUDNN_FRONTEND_INCLUDE AND MOE_CUDNN_INCLUDE AND MOE_CUDNN_SOURCES)
    set(MOE_HAVE_CUDNN ON)
    target_sources(moe_lib PRIVATE ${MOE_CUDNN_SOURCES})
    # -isystem: cudnn-frontend's headers warn under our -Wall -Wextra (unused static functions).
    # -O1: these files only build graphs and hand pointers to cuDNN, and at -O3 the frontend's
    # headers made cudnn_attention.cpp the build's longest file (198 CPU-s, against 73 s at -O1
    # and 88 s for the CUTLASS file), which the GPU check's build waits for.
    set_source_files_properties(${MOE_CUDNN_SOURCES} PROPERTIES
      COMPILE_OPTIONS "-isystem;${MOE_CUDNN_FRONTEND_INCLUDE};-isystem;${MOE_CUDNN_INCLUDE};-O1"
      COMPILE_DEFINITIONS NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING)
    target_compile_definitions(moe_lib PUBLIC MOE_HAVE_CUDNN=1)
    target_link_libraries(moe_lib PUBLIC ${CMAKE_DL_LIBS})
  endif()
endif()
message(STATUS "cuDNN fused attention (loaded at run time): ${MOE_HAVE_CUDNN}")
