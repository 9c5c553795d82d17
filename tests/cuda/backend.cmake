# SPDX-License-Identifier: Apache-2.0
# The cuda backend (runtime/backend_cuda.c) against kernels/cpu: allocation
# and accounting, the device arenas, copies, pinning, and every kernel op with
# device, host and mixed pointers. Included by tests/cuda/CMakeLists.txt.
add_executable(test_cuda_backend test_cuda_backend.c)
target_link_libraries(test_cuda_backend PRIVATE zrt_internal CUDA::cudart m)
target_compile_definitions(test_cuda_backend PRIVATE _GNU_SOURCE)
target_compile_options(test_cuda_backend PRIVATE ${ZRT_WARNINGS} -ffp-contract=off)
# zrt_internal folds in the CUDA kernels' archive: link with nvcc's driver and
# the shared runtime, as the library does.
set_target_properties(test_cuda_backend PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
add_test(NAME test_cuda_backend COMMAND test_cuda_backend)
set_tests_properties(test_cuda_backend PROPERTIES LABELS cuda SKIP_RETURN_CODE 77
                     TIMEOUT 300)
