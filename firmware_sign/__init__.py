"""firmware-sign: role keys, model packages and anchor statements for edge releases."""
