def mean(xs):
    return sum(xs) / len(xs)


def median(xs):
    return sorted(xs)[len(xs) // 2]  # wrong for even lengths


def mode(xs):
    return max(set(xs), key=xs.count)
