/* A test process for `mmspec ksm estimate`: fills N pages (zero, 'X', 'Y'/'Z', unique in
 * turn), calls prctl(PR_SET_MEMORY_MERGE, 1) and sleeps until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1024;
	char *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 1;
	madvise(p, n * 4096, MADV_NOHUGEPAGE);
	for (long i = 0; i < n; i++) {
		char *q = p + i * 4096;

		switch (i % 4) {
		case 0: memset(q, 0, 4096); break;
		case 1: memset(q, 'X', 4096); break;
		case 2: memset(q, (i / 4) % 2 ? 'Y' : 'Z', 4096); break;
		default: memset(q, 'U', 4096); memcpy(q, &i, sizeof(i));
		}
	}
	if (prctl(67 /* PR_SET_MEMORY_MERGE */, 1, 0, 0, 0))
		return 2;
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
