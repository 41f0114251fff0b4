"""The built-in synthetic audio-visual world.

Each video shows 1-3 moving objects on a textured background; the sounding ones make sounds caused by what
is seen (an impact clicks, a flash beeps, an opening mouth voices), panned to where they are. Because the
generator knows every box and every sound-causing event, audio-visual synchronization, correspondence and
sound-source localization can be measured exactly on its videos.

Layout: ``timeline`` (frame/sample clocks), ``shapes`` (anti-aliased sprites), ``sounds`` (audio building
blocks, panning, mixing), ``classes/`` (one module per object class: look, motion, sound), ``background``,
``scene`` (objects + events + boxes for one video), ``render`` (frames), ``encode`` (H.264/AAC mp4),
``generate`` (the dataset: labels, splits, resumable parallel writing, index.csv).
"""
