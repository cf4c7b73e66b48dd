"""Language models built from ssmbench.layers: the five-way zoo, MambaByte, MegaByte."""
