"""Likelihood models, one module per family, each a torch network plus its coding procedure.

    hyperprior_net   the variable-rate mean-scale hyperprior network (training and coding)
    hyperprior       the `hyperprior` codec: tiling, exact hyper synthesis, entropy coding
"""
