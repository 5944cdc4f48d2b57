from django.urls import path

from sessions_app.api import views

urlpatterns = [
    path("sessions", views.SessionListCreateView.as_view(), name="session-list"),
    path("sessions/<str:session_id>", views.SessionDetailView.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/end", views.SessionEndView.as_view(), name="session-end"),
    path("sessions/<str:session_id>/speak", views.SessionSpeakView.as_view(), name="session-speak"),
    path("sessions/<str:session_id>/utterances/<str:utterance_id>/append", views.UtteranceAppendView.as_view(),
         name="utterance-append"),
    path("sessions/<str:session_id>/transcript", views.SessionTranscriptView.as_view(), name="session-transcript"),
    path("sessions/<str:session_id>/interrupt", views.SessionInterruptView.as_view(), name="session-interrupt"),
    path("sessions/<str:session_id>/webrtc", views.SessionWebRTCView.as_view(), name="session-webrtc"),
    path("sessions/<str:session_id>/microphone", views.SessionMicrophoneView.as_view(), name="session-microphone"),
    path("sessions/<str:session_id>/viewers", views.SessionViewersView.as_view(), name="session-viewers"),
    path("sessions/<str:session_id>/viewers/<str:viewer_id>", views.SessionViewerView.as_view(), name="session-viewer"),
    path("sessions/<str:session_id>/viewers/<str:viewer_id>/answer", views.SessionViewerAnswerView.as_view(),
         name="session-viewer-answer"),
]
