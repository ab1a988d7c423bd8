"""Imported last by uWSGI's master after the preloaded libraries (``shared-import``).

``gc.freeze()`` moves every object alive now into a permanent generation the collector never
visits, so the workers forked next do not write to (and so copy) the pages those objects share
with the master when a collection runs.
"""

import gc

gc.freeze()
