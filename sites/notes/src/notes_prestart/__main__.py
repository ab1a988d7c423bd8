from notes_prestart import main

main()
