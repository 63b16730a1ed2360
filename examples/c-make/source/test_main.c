#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mathlib.h"

/* usage: tests add A B | tests factorial N ; prints the result */
int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "add") == 0) {
        printf("%ld\n", add(atol(argv[2]), atol(argv[3])));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "factorial") == 0) {
        printf("%ld\n", factorial(atoi(argv[2])));
        return 0;
    }
    return 2;
}
