# SPDX-License-Identifier: Apache-2.0
# cmake/ZrtCuda.cmake — finds the CUDA toolchain for kernels/cuda, without
# making it a requirement of the rest of the build.
#
# Sets ZRT_CUDA_FOUND (ON when nvcc works and the CUDA language is enabled).
# When ON it has also run find_package(CUDAToolkit) (CUDA::cudart,
# CUDA::cublas, ...) and looked for NCCL:
#   ZRT_NCCL_FOUND     ON when nccl.h and libnccl were found
#   zrt::nccl          an imported target for them (only when found)
#
# Where nvcc comes from, first hit wins: CMAKE_CUDA_COMPILER or $CUDACXX if
# set; nvcc on PATH; $CUDA_HOME/bin, $CUDA_PATH/bin, CUDAToolkit_ROOT/bin,
# /usr/local/cuda/bin. NCCL: NCCL_ROOT ($NCCL_ROOT), the CUDA toolkit's
# include and library directories, then the system's (e.g.
# /usr/lib/x86_64-linux-gnu for Debian's libnccl-dev).
#
# The target architectures default to sm_90 SASS plus compute_90 PTX
# ("90-real;90-virtual"); set CMAKE_CUDA_ARCHITECTURES to change them.

include_guard(GLOBAL)
include(CheckLanguage)

set(ZRT_CUDA_FOUND OFF)
set(ZRT_NCCL_FOUND OFF)

if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(ZRT_NVCC nvcc
    HINTS ENV CUDA_HOME ENV CUDA_PATH ${CUDAToolkit_ROOT}
    PATH_SUFFIXES bin
    PATHS /usr/local/cuda)
  if(ZRT_NVCC)
    # check_language() and enable_language() both read $CUDACXX; setting the
    # cache variable instead would skip check_language's trial.
    set(ENV{CUDACXX} "${ZRT_NVCC}")
  endif()
endif()

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
endif()

check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "zrt: no CUDA compiler (nvcc) found: the CUDA kernels and "
                 "their tests are not built")
  return()
endif()

enable_language(CUDA)
find_package(CUDAToolkit)
if(NOT CUDAToolkit_FOUND)
  message(STATUS "zrt: nvcc found but not the CUDA toolkit's libraries: the "
                 "CUDA kernels and their tests are not built")
  return()
endif()
set(ZRT_CUDA_FOUND ON)
message(STATUS "zrt: CUDA ${CUDAToolkit_VERSION} (${CMAKE_CUDA_COMPILER}), "
               "architectures ${CMAKE_CUDA_ARCHITECTURES}")

find_path(ZRT_NCCL_INCLUDE_DIR nccl.h
  HINTS ${NCCL_ROOT} ENV NCCL_ROOT ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include)
find_library(ZRT_NCCL_LIBRARY nccl
  HINTS ${NCCL_ROOT} ENV NCCL_ROOT ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib lib64)
if(ZRT_NCCL_INCLUDE_DIR AND ZRT_NCCL_LIBRARY)
  set(ZRT_NCCL_FOUND ON)
  if(NOT TARGET zrt::nccl)
    add_library(zrt::nccl UNKNOWN IMPORTED)
    set_target_properties(zrt::nccl PROPERTIES
      IMPORTED_LOCATION "${ZRT_NCCL_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${ZRT_NCCL_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES CUDA::cudart)
  endif()
  message(STATUS "zrt: NCCL ${ZRT_NCCL_LIBRARY}")
else()
  message(WARNING "zrt: NCCL not found (set NCCL_ROOT): the CUDA kernels build "
                  "without it, the NCCL communicator will need it")
endif()
