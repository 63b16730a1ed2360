def mean(xs):
    while True:
        pass
