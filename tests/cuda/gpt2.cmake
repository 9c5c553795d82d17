# SPDX-License-Identifier: Apache-2.0
# The GPT-2 example on a GPU (examples/gpt2/cuda). Included by
# tests/cuda/CMakeLists.txt; label cuda; both skip (77) without a device.

# Every CUDA layer, forward and backward, against examples/gpt2/layers.c.
add_executable(test_gpt2_layers_cuda test_gpt2_layers_cuda.c)
target_link_libraries(test_gpt2_layers_cuda PRIVATE zrt_gpt2 zrt_gpt2_cuda CUDA::cudart m)
target_compile_definitions(test_gpt2_layers_cuda PRIVATE _GNU_SOURCE)
target_compile_options(test_gpt2_layers_cuda PRIVATE ${ZRT_WARNINGS})
# the archive holds CUDA code: link with the shared runtime, as libzrt does
set_target_properties(test_gpt2_layers_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
add_test(NAME test_gpt2_layers_cuda COMMAND test_gpt2_layers_cuda)
set_tests_properties(test_gpt2_layers_cuda PROPERTIES LABELS cuda SKIP_RETURN_CODE 77
                     TIMEOUT 300)

# train_gpt2 --backend cuda: stages, world sizes, offload, and the losses
# against the cpu backend (tests/scripts/gpt2_cuda.sh says what and why).
# one string (not a list): the script splits it on spaces, as common.sh does
set(ZRT_GPT2_CUDA_MPIRUN
    "${MPIEXEC_EXECUTABLE} --oversubscribe --bind-to none ${ZRT_MPIEXEC_EXTRA}")
add_test(NAME gpt2_cuda
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/scripts/gpt2_cuda.sh
                 $<TARGET_FILE:train_gpt2> $<TARGET_FILE:dump_compare>)
set_tests_properties(gpt2_cuda PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 1200
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;ZRT_MPIRUN=${ZRT_GPT2_CUDA_MPIRUN}")
