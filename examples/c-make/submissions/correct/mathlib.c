#include "mathlib.h"

long add(long a, long b) { return a + b; }

long factorial(int n) {
    long r = 1;
    for (int i = 2; i <= n; i++) r *= i;
    return r;
}
