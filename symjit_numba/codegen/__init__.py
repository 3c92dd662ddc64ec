"""Code generation: SymPy expressions to readable kernel source, one printer for every target.

``printer`` turns a formula and its derivative into kernel statements (needs SymPy); ``prebuilt``
holds those statements for the named formulas, so a layer of named formulas needs no SymPy;
``source`` assembles the kernel module from printed formulas.
"""
