#ifndef MATHLIB_H
#define MATHLIB_H
long add(long a, long b);
long factorial(int n);
#endif
