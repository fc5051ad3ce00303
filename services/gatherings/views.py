from shared.web import Api

api = Api(service="gatherings", title="Recovery community center: gatherings")
