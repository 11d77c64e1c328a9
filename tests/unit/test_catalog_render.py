"""Catalog rendering: rows become members with safe, unique names; posts point at archive paths."""

import threading

import pytest

from services.catalog.render import BlogPlanner, plan_blog, plan_storage
from shared.archive.frontmatter import parse_markdown


def post(i: int, slug: str, featured: str | None = None) -> dict:
    return {"id": f"p{i}", "slug": slug, "title": f"T{i}", "description": "d", "markdown_content": "body",
            "tags": '["a"]', "status": "published", "featured_image": featured, "published_at": 1,
            "created_at": 1, "updated_at": 2}


def media(i: int, filename: str) -> dict:
    return {"id": f"m{i}", "filename": filename, "r2_key": f"k/{i}/{filename}", "mime_type": "image/jpeg",
            "size": 10, "uploaded_at": 5}


def test_duplicate_slugs_and_filenames_all_survive_with_unique_names() -> None:
    plan = plan_blog([post(1, "hello"), post(2, "hello")], [], [media(1, "a.jpg"), media(2, "a.jpg")], True, "img")
    assert [t.path for t in plan.texts] == ["posts/hello.md", "posts/hello-2.md", "index.json", "feed.json"]
    assert [o.path for o in plan.objects] == ["media/a.jpg", "media/a-2.jpg"]
    assert plan.counts == {"posts": 2, "pages": 0, "images": 2}


def test_a_featured_image_points_at_its_file_relative_to_the_post_and_keeps_the_original() -> None:
    plan = plan_blog([post(1, "x", featured="k/2/b.jpg")], [], [media(2, "b.jpg")], True, "img")
    meta, _ = parse_markdown(plan.texts[0].data.decode())
    assert meta["featured_image"] == "../media/b.jpg"
    assert meta["featured_image_original"] == "k/2/b.jpg"
    text_only = plan_blog([post(1, "x", featured="k/2/b.jpg")], [], [media(2, "b.jpg")], False, "img")
    assert parse_markdown(text_only.texts[0].data.decode())[0]["featured_image"] == "k/2/b.jpg"
    assert text_only.objects == [] and text_only.counts["images"] == 0


def test_storage_mode_files_go_under_their_category() -> None:
    rows = [{"id": "f1", "filename": "x.txt", "r2_key": "k1", "mime_type": "text/plain", "size": 1,
             "category": "uploads", "uploaded_at": 1},
            {"id": "f2", "filename": "../../etc/passwd", "r2_key": "k2", "mime_type": None, "size": 1,
             "category": "../..", "uploaded_at": 1}]
    plan = plan_storage(rows, "amber")
    assert plan.objects[0].path == "files/uploads/x.txt"
    assert ".." not in plan.objects[1].path.split("/") and plan.objects[1].path.startswith("files/")


def test_dot_slugs_and_extension_only_filenames_keep_their_extension() -> None:
    plan = plan_blog([post(1, ""), post(2, ".."), post(3, "...")], [],
                     [media(1, "   .jpg"), media(2, ".jpg"), media(3, "")], True, "img")
    posts = [t for t in plan.texts if t.kind == "post"]
    assert len(posts) == 3 and all(t.path.endswith(".md") for t in posts), [t.path for t in posts]
    assert [o.path for o in plan.objects][:2] == ["media/media-m1.jpg", "media/media-m2.jpg"]


def test_rendering_marks_progress_after_each_post_its_feed_item_and_each_page() -> None:
    # The worker stops a step that stops moving: 100,000 posts take minutes to render (pages too:
    # they marked nothing).
    marks: list[int] = []
    plan_blog([post(i, f"p{i}") for i in range(1, 6)], [post(i, f"g{i}") for i in range(6, 9)], [], True, "img",
              moved=lambda: marks.append(1))
    assert len(marks) == 5 * 2 + 3


def test_a_planner_closed_while_a_step_renders_in_its_thread_is_closed_when_that_step_ends() -> None:
    # The catalog closes the planner when its step is cancelled while a batch renders in a thread:
    # the spools are not pulled from under that thread, and nothing more is rendered after it.
    rendering, closed = threading.Event(), threading.Event()

    def moved() -> None:
        rendering.set()
        assert closed.wait(10)

    planner = BlogPlanner(True, "img", moved=moved)
    planner.media([])
    planner.begin(2, 0)
    step = threading.Thread(target=planner.posts, args=([post(1, "a")],))
    step.start()
    assert rendering.wait(10)
    planner.close()
    assert planner.plan.spool.size > 0 and not planner.plan.spool.on_disk
    planner.plan.spool.read(0, 1)  # still open: the step is rendering
    closed.set()
    step.join(10)
    with pytest.raises(ValueError, match="closed"):
        planner.plan.spool.read(0, 1)
    with pytest.raises(ValueError, match="the plan was closed"):
        planner.posts([post(2, "b")])
