#include <stdio.h>
int main(void) { fprintf(stderr, "ondev: not built yet\n"); return 1; }
