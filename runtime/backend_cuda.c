/* runtime/backend_cuda.c — being written. */
typedef int zrt__backend_cuda_placeholder;
