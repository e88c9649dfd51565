"""A few built-in English paragraphs: a stand-in corpus for tests and smoke runs only.

Real measurements should pass ``--corpus`` (held-out text the model never trained on);
these paragraphs exist so the load generator and its tests run without any data files.
They are already normalised (single spaces, no leading/trailing whitespace).
"""

from __future__ import annotations

BUILTIN_PARAGRAPHS: tuple[str, ...] = (
    "I went to see this movie with a couple of friends on a rainy Sunday afternoon and "
    "none of us expected much from it. The trailer made it look like another loud action "
    "picture, but the story turned out to be quiet and surprisingly moving. The lead actor "
    "gives the best performance of his career, and the ending stayed with me for days.",
    "The first half of the film is slow, and I almost walked out after forty minutes. "
    "Then the plot finally starts to move and everything that seemed pointless suddenly "
    "makes sense. I would not call it a masterpiece, but it is a solid piece of work with "
    "good acting, a clever script and some beautiful shots of the coast.",
    "This is one of the worst movies I have ever seen. The dialogue is wooden, the special "
    "effects look cheap, and the characters make the most stupid decisions at every turn. "
    "I kept waiting for it to get better, but it never did. Save your money and watch "
    "something else.",
    "My grandmother used to tell us stories about the old house by the river, where she "
    "grew up with her four brothers. Every summer they would build a raft out of old doors "
    "and sail it down to the mill, and every summer it would sink before they got there. "
    "She laughed every time she told it, as if it had happened only yesterday.",
    "The meeting has been moved to Thursday at ten in the morning because the project "
    "manager is travelling on Wednesday. Please bring the latest version of the report and "
    "the figures for the third quarter. If you cannot attend, send me your comments by the "
    "end of the day so that I can pass them on to the rest of the team.",
    "When the train finally pulled into the station it was almost midnight, and the "
    "platform was empty except for an old man selling newspapers. She picked up her bag, "
    "stepped down onto the cold concrete and looked around for a taxi. There was none, so "
    "she started walking towards the lights of the town.",
    "The recipe is simple. Cut the onions into thin slices and cook them slowly in butter "
    "until they turn soft and golden. Add the garlic, a little salt and a spoonful of "
    "flour, then pour in the stock and let the soup simmer for half an hour. Serve it hot "
    "with toasted bread and plenty of cheese on top.",
    "I have watched this series from the very first episode, and the new season is by far "
    "the best so far. The writers clearly know where the story is going, the new "
    "characters fit in well, and the music is as good as ever. My only complaint is that "
    "there are just eight episodes, and I finished all of them in two nights.",
    "It was the kind of town where everyone knew everyone else, and nothing ever seemed to "
    "change. The same people sat in the same chairs at the same cafe every morning, talking "
    "about the weather and the football results. So when a stranger arrived on the last bus "
    "one evening in October, the whole town noticed.",
    "Thank you for your letter and for the kind words about the book. I am glad that you "
    "enjoyed it, and I am sorry that it took me so long to write back. The last few months "
    "have been very busy, but I hope to visit your part of the country in the spring, and "
    "it would be a pleasure to meet you then.",
    "The acting in this film is good, but the story is a mess. There are too many "
    "characters, too many subplots and too many scenes that go nowhere. The director "
    "clearly had a lot of ideas, and some of them are brilliant, but he never manages to "
    "bring them together into one film that works from start to finish.",
    "We left the camp early in the morning while the mountains were still covered in fog. "
    "The path climbed steeply through the forest, and after two hours we reached the ridge "
    "just as the sun broke through the clouds. From the top we could see the whole valley, "
    "the lake, the village and the road that we had driven up the day before.",
)
