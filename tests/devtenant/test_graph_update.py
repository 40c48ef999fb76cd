import httpx
import pytest
from devtenant_harness import SHARED, eml, graph_client, run
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.followup_flag import FollowupFlag
from msgraph.generated.models.followup_flag_status import FollowupFlagStatus
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.messages.item.move.move_post_request_body import MovePostRequestBody


def _immutable():
    config = RequestConfiguration()
    config.headers.add("Prefer", 'IdType="ImmutableId"')
    return config


def test_patch_is_read__unread_message__200_full_message_and_new_change_key(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())
    before = tenant.state.messages(SHARED)[0].change_key

    async def scenario():
        item = graph_client(tenant).users.by_user_id(SHARED).messages.by_message_id(message_id)
        return await item.patch(
            Message(is_read=True, categories=["imported"], flag=FollowupFlag(flag_status=FollowupFlagStatus.Flagged))
        )

    updated = run(scenario)
    assert (updated.id, updated.is_read, updated.categories) == (message_id, True, ["imported"])
    assert updated.flag.flag_status == FollowupFlagStatus.Flagged
    assert updated.subject == "Hello"  # the full message comes back
    assert updated.change_key != before
    assert tenant.state.messages(SHARED)[0].is_read is True


def test_patch_subject__received_message__400_sent_message_property(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())

    async def scenario():
        await (
            graph_client(tenant)
            .users.by_user_id(SHARED)
            .messages.by_message_id(message_id)
            .patch(Message(subject="changed"))
        )

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.response_status_code == 400
    assert tenant.state.messages(SHARED)[0].subject == "Hello"


def test_patch_subject__draft__allowed(tenant):
    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        draft = await messages.post(Message(subject="first"))
        return await messages.by_message_id(draft.id).patch(Message(subject="second"))

    assert run(scenario).subject == "second"


def test_move__rest_ids__201_new_id_and_old_id_gone(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())
    failed = tenant.state.create_folder(SHARED, "Failed")

    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        moved = await messages.by_message_id(message_id).move.post(MovePostRequestBody(destination_id=failed.id))
        try:
            await messages.by_message_id(message_id).get()
        except ODataError as error:
            return moved, error.error.code
        return moved, None

    moved, old_lookup = run(scenario)
    assert moved.id != message_id
    assert moved.parent_folder_id == failed.id
    assert old_lookup == "ErrorItemNotFound"
    assert tenant.requests.count(kind="message.move", status=201) == 1


def test_move__immutable_id_preferred__same_id_and_still_addressable(tenant):
    tenant.state.seed_eml(SHARED, eml())

    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        listed = await messages.get(request_configuration=_immutable())
        original = listed.value[0].id
        moved = await messages.by_message_id(original).move.post(
            MovePostRequestBody(destination_id="archive"), request_configuration=_immutable()
        )
        again = await messages.by_message_id(original).get(request_configuration=_immutable())
        return original, moved, again

    original, moved, again = run(scenario)
    assert moved.id == original == again.id
    assert again.parent_folder_id == tenant.state.folder_id(SHARED, "archive")


def test_move__unknown_destination__404(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())

    async def scenario():
        await (
            graph_client(tenant)
            .users.by_user_id(SHARED)
            .messages.by_message_id(message_id)
            .move.post(MovePostRequestBody(destination_id="AQMkAD" + "B" * 60))
        )

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.error.code == "ErrorItemNotFound"


def test_folders__create_list_get_children__201_then_listed(tenant):
    async def scenario():
        folders = graph_client(tenant).users.by_user_id(SHARED).mail_folders
        created = await folders.post(MailFolder(display_name="Imported"))
        child = await folders.by_mail_folder_id(created.id).child_folders.post(MailFolder(display_name="2024"))
        top = await folders.get()
        children = await folders.by_mail_folder_id(created.id).child_folders.get()
        inbox = await folders.by_mail_folder_id("inbox").get()
        return created, child, top, children, inbox

    created, child, top, children, inbox = run(scenario)
    assert created.parent_folder_id == tenant.state.folder_id(SHARED, "msgfolderroot")
    assert child.parent_folder_id == created.id
    assert [f.display_name for f in children.value] == ["2024"]
    names = [f.display_name for f in top.value]
    assert "Inbox" in names
    assert len(names) == 9 or top.odata_next_link  # 8 well-known + Imported, one page of 10
    assert (inbox.display_name, inbox.total_item_count, inbox.unread_item_count) == ("Inbox", 0, 0)
    assert tenant.state.folder_id(SHARED, "Imported/2024") == child.id


def test_folders__duplicate_name__400_error_folder_exists(tenant):
    tenant.state.create_folder(SHARED, "Failed")

    async def scenario():
        await graph_client(tenant).users.by_user_id(SHARED).mail_folders.post(MailFolder(display_name="failed"))

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (400, "ErrorFolderExists")
    assert caught.value.error.message == "A folder with the specified name already exists."


def test_folders__display_name_filter__lookup_before_create(tenant):
    tenant.state.create_folder(SHARED, "Failed")
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders",
        params={"$filter": "displayName eq 'Failed'"},
        headers={"Authorization": "Bearer t"},
    )
    assert [f["displayName"] for f in response.json()["value"]] == ["Failed"]


def test_folders__delete__204_and_the_folder_with_its_mail_moves_to_deleted_items(tenant):
    folder = tenant.state.create_folder(SHARED, "Acceptance run")
    tenant.state.seed_eml(SHARED, eml(), folder=folder.id)

    async def scenario():
        folders = graph_client(tenant).users.by_user_id(SHARED).mail_folders
        await folders.by_mail_folder_id(folder.id).delete()
        top = await folders.get()
        under_deleted = await folders.by_mail_folder_id("deleteditems").child_folders.get()
        return top, under_deleted

    top, under_deleted = run(scenario)
    assert "Acceptance run" not in [f.display_name for f in top.value]
    assert [f.display_name for f in under_deleted.value] == ["Acceptance run"]
    assert len(tenant.state.messages(SHARED, "Deleted Items/Acceptance run")) == 1


def test_folders__delete_a_well_known_folder__400_and_it_stays(tenant):
    async def scenario():
        await graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").delete()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (400, "ErrorDeleteDistinguishedFolder")
    assert tenant.state.folder_id(SHARED, "inbox")


def test_child_folder_messages__nested_key_path__routed(tenant):
    parent = tenant.state.create_folder(SHARED, "Parent")
    child = tenant.state.create_folder(SHARED, "Child", parent=parent.id)
    tenant.state.seed_eml(SHARED, eml(), folder=child.id)
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/{parent.id}/childFolders/{child.id}/messages",
        headers={"Authorization": "Bearer t"},
    )
    assert len(response.json()["value"]) == 1


def test_delete_message__204_then_404(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())
    headers = {"Authorization": "Bearer t"}
    deleted = httpx.delete(f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}", headers=headers)
    again = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}", headers=headers)
    assert (deleted.status_code, again.status_code) == (204, 404)
