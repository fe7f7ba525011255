"""One module per group of hostile cases: ``build(folder)`` writes its inputs, ``cases()`` lists them."""
