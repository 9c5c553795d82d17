# SPDX-License-Identifier: Apache-2.0
# The communicators on the cuda backend (tests/cuda/test_comm_cuda.c): NCCL
# where every rank has a GPU of its own, its refusal and MPI's staging through
# pinned host memory where ranks share one, under mpirun with 1 and 2 ranks.
# Included by tests/cuda/CMakeLists.txt. Without a device every rank exits 77
# before MPI starts, mpirun passes that on, and ctest reports a skip.
#
# mpirun as tests/CMakeLists.txt runs the mpi tests (its variables are not
# seen from this directory).
set(ZRT_COMM_CUDA_MPIRUN_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_rmaps_base_oversubscribe=1)
set(ZRT_COMM_CUDA_MPIRUN ${MPIEXEC_EXECUTABLE} --oversubscribe --bind-to none
    ${ZRT_MPIEXEC_EXTRA})
add_executable(test_comm_cuda test_comm_cuda.c)
target_link_libraries(test_comm_cuda PRIVATE zrt_internal CUDA::cudart m)
target_compile_definitions(test_comm_cuda PRIVATE _GNU_SOURCE)
target_compile_options(test_comm_cuda PRIVATE ${ZRT_WARNINGS} -ffp-contract=off)
# zrt_internal folds in the CUDA kernels' archive: link with nvcc's driver and
# the shared runtime, as the library does.
set_target_properties(test_comm_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
foreach(np 1 2)
  add_test(NAME test_comm_cuda_np${np}
           COMMAND ${ZRT_COMM_CUDA_MPIRUN} -np ${np} $<TARGET_FILE:test_comm_cuda>)
  set_tests_properties(test_comm_cuda_np${np} PROPERTIES LABELS cuda SKIP_RETURN_CODE 77
                       ENVIRONMENT "${ZRT_COMM_CUDA_MPIRUN_ENV}" TIMEOUT 300)
endforeach()
