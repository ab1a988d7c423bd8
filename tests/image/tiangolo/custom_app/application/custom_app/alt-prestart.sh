echo "the prestart named by PRE_START_PATH ran"
